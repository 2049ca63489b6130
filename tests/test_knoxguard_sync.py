"""Knox Guard pull jobs end to end: simulator over HTTP, real PostgreSQL, report.phones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, TOKEN_PATH, KnoxGuardSim, create_app
from syncd.jobs.runner import JobRunner, Outcome, RunResult
from syncd.settings.core import Settings
from syncd.sync.knoxguard import KnoxDevicesJob, KnoxUploadsJob
from syncd.vendors.knoxguard import KnoxGuardClient
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

CLIENT_ID = "kg-sync-client"
LIST = BASE_PATH + "/devices/list"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def tenant(clock: Clock) -> Callable[..., KnoxGuardSim]:
    def build(devices: int = 30, **kwargs: Any) -> KnoxGuardSim:
        return KnoxGuardSim(seed=21, devices=devices, api_token="", clock=clock,
                            transition_delay=0.05, **kwargs)
    return build


_KEYS: dict[int, str] = {}


def client_for(http: aiohttp.ClientSession, sim: KnoxGuardSim, running: Running, clock: Clock,
               **kwargs: Any) -> KnoxGuardClient:
    """A signed-token client for the simulator's tenant (its keys registered on first use)."""
    if id(sim) not in _KEYS or CLIENT_ID not in sim.auth.clients:
        _KEYS[id(sim)] = sim.auth.register(CLIENT_ID)
    keys = _KEYS[id(sim)]
    return KnoxGuardClient(http, running.url, keys=keys, client_identifier=CLIENT_ID,
                           token_url=running.url.removesuffix(BASE_PATH) + TOKEN_PATH,
                           clock=clock, **kwargs)


async def run(db: Database, job: Any) -> RunResult:
    return await JobRunner(db).run(job)


async def phones(db: Database) -> dict[str, tuple[Any, ...]]:
    rows = await db.pool.fetch("SELECT device_uid, imei, vendor_state, console_state, gone_at "
                               "FROM report.phones WHERE provider = 'knoxguard'")
    return {r["device_uid"]: (r["imei"], r["vendor_state"], r["console_state"], r["gone_at"])
            for r in rows}


CONSOLE = {"Accepted": "Activating", "Enrolled": "Active", "Blinked": "Reminder On",
           "StartingReminder": "Starting Reminder", "StoppingReminder": "Stopping Reminder"}


def expected(sim: KnoxGuardSim) -> dict[str, tuple[Any, ...]]:
    """What report.phones must show for the tenant (console names per FIELD-NOTES)."""
    return {d.device_uid: (d.imei or None, d.status, CONSOLE.get(d.status, d.status), None)
            for d in sim.devices.values()}


async def cursor(db: Database, name: str) -> Any:
    return await db.pool.fetchval("SELECT value FROM ops.cursors WHERE name = $1", name)


@pytest.mark.parametrize(("devices", "page_size", "list_calls"),
                         [(30, 10, 4), (25, 10, 3), (0, 10, 1), (10, 10, 2)])
async def test_paging_ends_on_a_short_page_and_resets_the_cursor(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock, devices: int, page_size: int, list_calls: int) -> None:
    """Exact multiples end on an empty page, others on a short one; an empty tenant is one call."""
    sim = tenant(devices)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        result = await run(db, KnoxDevicesJob(db, client, page_size=page_size))
        assert result.outcome is Outcome.OK, result.error
        assert running.counters[LIST].requests == list_calls
    assert await phones(db) == expected(sim)
    assert await cursor(db, "knox-devices") == {"next_page": 0}
    assert result.items == devices


async def test_each_page_commits_with_its_cursor_and_a_failed_run_resumes(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """A 5xx mid-pass keeps the pages written and the cursor; the next run resumes from it."""
    sim = tenant(30)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock, retry=RetryPolicy(max_retries=0))
        sim.after_list_page = lambda n: running.faults.set(LIST, FaultSpec(error_rate=1.0)) \
            if n == 1 else None
        failed = await run(db, KnoxDevicesJob(db, client, page_size=10))
        assert failed.outcome is Outcome.FAILED
        assert await cursor(db, "knox-devices") == {"next_page": 2}
        assert len(await phones(db)) == 20
        running.faults.clear()
        sim.after_list_page = None
        resumed = await run(db, KnoxDevicesJob(db, client, page_size=10))
        assert resumed.outcome is Outcome.OK, resumed.error
    assert resumed.items == 10
    assert await phones(db) == expected(sim)
    assert await cursor(db, "knox-devices") == {"next_page": 0}


async def test_a_device_missing_from_the_list_is_gone_only_after_a_direct_check(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """A deletion mid-pass shifts pages so a live device is skipped: the direct check keeps it;
    the deleted device, absent from the next pass, is marked gone once the check confirms it."""
    sim = tenant(30)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        job = KnoxDevicesJob(db, client, page_size=10)
        assert (await run(db, job)).outcome is Outcome.OK
        uids = list(sim.devices)
        deleted, skipped = uids[0], uids[10]  # deleting page 0's first device moves uids[10] up

        def delete_after_first_page(page_num: int) -> None:
            if page_num == 0 and deleted in sim.devices:
                sim.remove_device(deleted)

        sim.after_list_page = delete_after_first_page
        before = running.counters[LIST].requests
        assert (await run(db, job)).outcome is Outcome.OK
        # 3 pages (29 devices), then one direct check, for the skipped device only.
        assert running.counters[LIST].requests - before == 3 + 1
        assert all(row[3] is None for row in (await phones(db)).values())
        before = running.counters[LIST].requests
        assert (await run(db, job)).outcome is Outcome.OK
        assert running.counters[LIST].requests - before == 3 + 1  # the deleted one is checked
    state = await phones(db)
    assert [uid for uid, row in state.items() if row[3] is not None] == [deleted]
    assert state[skipped][3] is None


async def test_a_failed_direct_check_marks_nothing_gone(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """When the direct check cannot answer, the run fails and no device is marked gone."""
    sim = tenant(12)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock, retry=RetryPolicy(max_retries=0))
        job = KnoxDevicesJob(db, client, page_size=10)
        assert (await run(db, job)).outcome is Outcome.OK
        sim.remove_device(next(iter(sim.devices)))
        sim.after_list_page = lambda n: running.faults.set(LIST, FaultSpec(error_rate=1.0)) \
            if n == 1 else None
        result = await run(db, job)
    assert result.outcome is Outcome.FAILED
    assert all(row[3] is None for row in (await phones(db)).values())


async def test_a_no_change_resync_writes_nothing(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """Re-syncing an unchanged tenant leaves every phone and upload row untouched (same xmin)."""
    sim = tenant(25)
    query = "SELECT string_agg(device_uid || upload_id || xmin::text, ',' ORDER BY 1) FROM {}"
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        jobs = [KnoxUploadsJob(db, client), KnoxDevicesJob(db, client, page_size=10)]
        for job in jobs:
            assert (await run(db, job)).outcome is Outcome.OK
        phones_before = await db.pool.fetchval(
            "SELECT string_agg(device_uid || xmin::text, ',' ORDER BY 1) FROM vendor.phones")
        uploads_before = await db.pool.fetchval(query.format("vendor.phone_uploads"))
        before = running.counters.requests
        for job in jobs:
            assert (await run(db, job)).outcome is Outcome.OK
        upload_calls = running.counters.requests - before - 3
    assert await db.pool.fetchval(
        "SELECT string_agg(device_uid || xmin::text, ',' ORDER BY 1) FROM vendor.phones") == \
        phones_before
    assert await db.pool.fetchval(query.format("vendor.phone_uploads")) == uploads_before
    assert upload_calls == 1  # settled batches are not read again


@pytest.mark.parametrize(("page_size", "list_calls"), [(2, 3), (3, 2), (10, 1)])
async def test_uploads_land_per_device_with_batch_status(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock, page_size: int, list_calls: int) -> None:
    """Every device of every upload batch is a phone_uploads row; 4 batches in pages of 2 (an
    exact multiple) end on an empty page, in pages of 3 or 10 on a short one."""
    sim = tenant(25)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        await client.upload_devices(["356938035643809", "bad uid!"])
        result = await run(db, KnoxUploadsJob(db, client, page_size=page_size))
        assert result.outcome is Outcome.OK, result.error
        assert running.counters[BASE_PATH + "/devices/uploads"].requests == list_calls + 1
    rows = await db.pool.fetch("SELECT device_uid, upload_id, status FROM vendor.phone_uploads "
                               "WHERE provider = 'knoxguard'")
    want = {(e.device_uid, b.upload_id, "SUCCESS" if e.valid else "FAIL")
            for b in sim.fleet.uploads.values() for e in b.entries}
    assert {(r["device_uid"], r["upload_id"], r["status"]) for r in rows} == want
    assert await cursor(db, "knox-uploads") == {"next_page": 0}


async def test_token_expiry_and_revocation_mid_sync_renew_without_jti_reuse(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """Time moving past the token's renewal point mid-sync renews before sending; a revoked token
    is renewed once on 401; every token syncd built has its own jti."""
    sim = tenant(50)

    def churn(page_num: int) -> None:
        if page_num == 1:
            clock.advance(seconds=29.5 * 60)  # the token has 30 s left: renewed before the next call
        if page_num == 3:
            sim.auth.revoke_all()  # the next call gets 401 and is repeated with a new token

    sim.after_list_page = churn
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        result = await run(db, KnoxDevicesJob(db, client, page_size=10))
        assert result.outcome is Outcome.OK, result.error
        assert running.counters[BASE_PATH + "/devices/list"].requests == 7  # 6 pages + one 401
    assert sim.auth.exchanges == 3 and client.token_fetches == 3
    assert sim.auth.jti_replays == 0 and sim.auth.expired == 0
    assert len(sim.auth.jtis) == 6
    assert await phones(db) == expected(sim)


async def test_a_429_storm_mid_sync_is_retried_to_a_complete_listing(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """A tenant limit far below syncd's pace answers 429s; Retry-After is honoured; nothing lost."""
    sim = tenant(40, rate_limit=3, rate_window=0.5)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock, retry=RetryPolicy(max_retries=6))
        result = await run(db, KnoxDevicesJob(db, client, page_size=5))
        assert result.outcome is Outcome.OK, result.error
        assert running.counters.rate_limited > 0
    assert await phones(db) == expected(sim)


async def test_ten_thousand_devices_sync_without_a_single_429(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """A 10,000-device tenant at the documented 100/s limit: paced at 90/s, zero 429 answers."""
    sim = tenant(10_000)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock, rate=90.0)
        result = await run(db, KnoxDevicesJob(db, client, page_size=100))
        assert result.outcome is Outcome.OK, result.error
        assert running.counters.rate_limited == 0
    assert result.items == 10_000
    assert await db.pool.fetchval(
        "SELECT count(*) FROM report.phones WHERE provider = 'knoxguard'") == 10_000


async def test_cli_sync_with_the_key_file_flow_matches_the_tenant_then_follows_changes(
        db: Database, tenant: Callable[..., KnoxGuardSim], make_settings: Callable[..., Settings],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd sync knox-uploads knox-devices --once` with keys_file: report.phones equals the
    tenant; after state changes a second sync shows the new states. No secret reaches the DB."""
    sim = KnoxGuardSim(seed=4, devices=40, api_token="")
    keys = sim.auth.register(CLIENT_ID)
    (tmp_path / "keys.json").write_text(keys)
    settings = make_settings()
    assert settings.database.url is not None
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(f"""
[database]
url = "{settings.database.url.get_secret_value()}"
[jobs.housekeeping]
enabled = false
[knoxguard]
base_url = "{running.url}"
keys_file = "{tmp_path / 'keys.json'}"
client_identifier = "{CLIENT_ID}"
page_size = 7
""")
        argv = ["--config", str(cfg), "sync", "knox-uploads", "knox-devices", "--once"]
        assert await _cli(argv) == 0
        assert await phones(db) == expected(sim)
        enrolled = sim.fleet.in_state("Enrolled")[0].device_uid
        pending = sim.fleet.in_state("Pending")[0].device_uid
        sim.set_state(enrolled, "Locked")
        sim.set_state(pending, "Accepted")
        assert await _cli(argv) == 0
    state = await phones(db)
    assert state == expected(sim)
    assert state[enrolled][1:3] == ("Locked", "Locked")
    assert state[pending][1:3] == ("Accepted", "Activating")
    captured = capsys.readouterr()
    assert "knox-devices: ok items=40" in captured.out
    dump = " ".join([await db.pool.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') "
                                            f"FROM {table} t") for table in (
        "ops.sync_runs", "ops.cursors", "vendor.phones", "vendor.phone_uploads")])
    private = json.loads(keys)["Private"]
    for secret in (CLIENT_ID, private[40:80], *sim.auth.grants):
        assert secret not in dump
        assert secret not in captured.out + captured.err


async def _cli(argv: list[str]) -> int:
    """Run the CLI in a worker thread (it starts its own event loop)."""
    return await asyncio.to_thread(main, argv)


async def test_a_knox_phone_disagreeing_with_its_contract_shows_in_drift(
        db: Database, http: aiohttp.ClientSession, tenant: Callable[..., KnoxGuardSim],
        clock: Clock) -> None:
    """A contract names only device_uid: it matches the knoxguard row, which report.phones
    shows in drift until the tenant's state agrees (in-flight Locking counts as agreeing)."""
    sim = tenant(20)
    uid = sim.fleet.in_state("Enrolled")[0].device_uid
    await db.pool.execute("INSERT INTO local.phone_contracts (device_uid, desired_state) "
                          "VALUES ($1, 'locked')", uid)
    drift = "SELECT provider, in_drift FROM report.phones WHERE device_uid = $1"
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = client_for(http, sim, running, clock)
        job = KnoxDevicesJob(db, client)
        assert (await run(db, job)).outcome is Outcome.OK
        assert [tuple(r) for r in await db.pool.fetch(drift, uid)] == [("knoxguard", True)]
        await client.lock(uid)
        assert (await run(db, job)).outcome is Outcome.OK
    assert [tuple(r) for r in await db.pool.fetch(drift, uid)] == [("knoxguard", False)]

"""NeoLock end to end: subscription lifecycle, pushes through the inbox, pull jobs, upserts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.app import create_app
from syncd.cli.main import main
from syncd.db import ops
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.core import Settings
from syncd.sync import neolock
from syncd.sync.subscription import digest, ensure
from syncd.vendors.neolock.client import NeoLockClient
from syncd.web import keys
from tests.conftest import free_port

JOBS_OFF = {name: {"enabled": False} for name in (
    "housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 30 devices, fast state transitions."""
    state = neosim.NeoLockSim(seed=3, devices=30, transition_delay=0.05, push_backoff=0.05)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


def neo_settings(make_settings: Callable[..., Settings], running: Running,
                 state: neosim.NeoLockSim, **extra: Any) -> Settings:
    return make_settings(neolock={"base_url": running.url, "login": state.login,
                                  "password": state.password, **extra.pop("neolock", {})},
                         jobs=JOBS_OFF, **extra)


@pytest.fixture
async def client(sim: tuple[neosim.NeoLockSim, Running]) -> AsyncIterator[NeoLockClient]:
    """A NeoLock client for the simulator."""
    state, running = sim
    async with aiohttp.ClientSession() as session:
        yield NeoLockClient(session, running.url, state.login, state.password)


async def test_subscription_registers_once_and_stores_only_a_hash(
        db: Database, client: NeoLockClient, sim: tuple[neosim.NeoLockSim, Running],
        make_settings: Callable[..., Settings]) -> None:
    """The hook URL is registered with a ≥128-bit generated secret; a second check changes nothing."""
    state, running = sim
    settings = neo_settings(make_settings, running, state,
                            server={"public_url": "https://syncd.example.com/"})
    first = await ensure(db, client, settings)
    assert first.action == "registered"
    url = state.subscription
    assert url is not None and url.startswith("https://syncd.example.com/hooks/neolock/")
    secret = url.rsplit("/", 1)[1]
    assert len(secret) >= 22  # ≥ 128 bits of url-safe base64
    sub = await ops.get_subscription(db, "neolock")
    assert sub is not None and sub.secret_sha256 == digest(secret)
    async with db.connection() as conn:  # the secret is nowhere in the database in clear
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM ops.subscriptions t")
    assert secret not in dump
    requests_before = running.counters.requests
    assert (await ensure(db, client, settings)).action == "unchanged"
    assert running.counters.requests == requests_before
    assert state.subscription == url


async def test_subscription_re_registers_when_url_or_secret_changes(
        db: Database, client: NeoLockClient, sim: tuple[neosim.NeoLockSim, Running],
        make_settings: Callable[..., Settings]) -> None:
    """A new public_url, or a newly configured secret, replaces the registered subscription."""
    state, running = sim
    one = neo_settings(make_settings, running, state, server={"public_url": "https://a.example"})
    await ensure(db, client, one)
    two = neo_settings(make_settings, running, state, server={"public_url": "https://b.example"})
    assert (await ensure(db, client, two)).action == "registered"
    assert state.subscription is not None and state.subscription.startswith("https://b.example/")
    secret = "configured-secret-0123456789abcdef"
    three = neo_settings(make_settings, running, state, server={"public_url": "https://b.example"},
                         neolock={"webhook_secret": secret})
    assert (await ensure(db, client, three)).action == "registered"
    assert state.subscription == f"https://b.example/hooks/neolock/{secret}"
    assert (await ensure(db, client, three)).action == "unchanged"


async def test_subscriptions_cli_register_show_delete(
        sim: tuple[neosim.NeoLockSim, Running], make_settings: Callable[..., Settings],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd subscriptions register|show|delete` manage the subscription; show hides the secret;
    delete needs --yes when there is no terminal to confirm on."""
    state, running = sim
    settings = make_settings()
    assert settings.database.url is not None
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f"""
[database]
url = "{settings.database.url.get_secret_value()}"
[server]
public_url = "https://hooks.example.com"
[neolock]
base_url = "{running.url}"
login = "{state.login}"
password = "{state.password}"
""")
    assert await asyncio.to_thread(main, ["--config", str(cfg), "subscriptions", "register"]) == 0
    assert state.subscription is not None
    secret = state.subscription.rsplit("/", 1)[1]
    assert await asyncio.to_thread(main, ["--config", str(cfg), "subscriptions", "show"]) == 0
    out = capsys.readouterr().out
    assert "https://hooks.example.com/hooks/neolock/" in out and "registered" in out
    assert secret not in out
    assert await asyncio.to_thread(main, ["--config", str(cfg), "subscriptions", "delete"]) == 1
    assert state.subscription is not None  # not confirmed: nothing deleted
    assert await asyncio.to_thread(main, ["--config", str(cfg), "subscriptions", "delete",
                                          "--yes"]) == 0
    assert state.subscription is None


async def test_pushes_are_stored_then_devices_reread_from_the_vendor(
        sim: tuple[neosim.NeoLockSim, Running], make_settings: Callable[..., Settings]) -> None:
    """A state change at NeoLock arrives as a push, is stored, and the device is re-read by GET."""
    state, running = sim
    port = free_port()
    settings = neo_settings(make_settings, running, state,
                            server={"port": port, "public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        db = app[keys.DB]
        async with aiohttp.ClientSession() as session:
            await ensure(db, NeoLockClient(session, running.url, state.login, state.password),
                         settings)
        uid = next(u for u, d in sorted(state.devices.items()) if d.status == "Enrolled")
        state.set_state(uid, "Locked")  # the vendor changes; it pushes KG_DEVICE_LOCKED to us

        for _ in range(100):
            async with db.connection() as conn:
                row = await conn.fetchrow(
                    "SELECT p.vendor_state, e.status, e.event_type FROM vendor.phones p "
                    "JOIN report.events e ON e.subject = p.device_uid WHERE p.device_uid = $1", uid)
            if row is not None and row["status"] == "processed":
                break
            await asyncio.sleep(0.1)
        assert row is not None
        assert (row["vendor_state"], row["status"], row["event_type"]) == \
            ("Locked", "processed", "KG_DEVICE_LOCKED")
    finally:
        await runner.cleanup()


async def run_job(db: Database, job: Any) -> Any:
    return await JobRunner(db).run(job)


@contextlib.asynccontextmanager
async def sim_failing(state: neosim.NeoLockSim, fails: Callable[[web.Request], bool]
                      ) -> AsyncIterator[Running]:
    """Serve `state` with a middleware answering 5xx wherever `fails(request)` says so."""

    @web.middleware
    async def failing(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if fails(request):
            return web.json_response({"message": "Tertiary endpoint error"}, status=502)
        return await handler(request)

    app = neosim.create_app(state)
    app.middlewares.insert(0, failing)
    async with serve(app, prefix=neosim.BASE_PATH) as running:
        yield running


async def test_uploads_job_pages_and_resumes_after_a_failed_page(db: Database) -> None:
    """Pages commit with their cursor; a run failing on page 2 keeps page 1 and the next run resumes."""
    state = neosim.NeoLockSim(seed=4, devices=30)
    for _ in range(50):
        state.add_device()  # 80 upload rows: pages of 25 → 4 pages (the last one short)
    broken = {"on": True}

    def second_page(request: web.Request) -> bool:
        return broken["on"] and request.path.endswith("/clients/devices/uploads") \
            and request.query.get("pageNum") == "1"

    async with sim_failing(state, second_page) as running, aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password, max_retries=2)
        job = neolock.NeoLockUploadsJob(db, client, page_size=25)
        first = await run_job(db, job)
        broken["on"] = False
        assert first.outcome is Outcome.FAILED
        assert (await ops.get_cursor(db, "neolock-uploads"))["next_page"] == 1
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM vendor.phone_uploads") == 25
        second = await run_job(db, job)
    assert second.outcome is Outcome.OK
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM vendor.phone_uploads") == 80
    assert (await ops.get_cursor(db, "neolock-uploads"))["next_page"] == 0


async def seed_known(db: Database, state: neosim.NeoLockSim) -> list[str]:
    uids = sorted(state.devices)
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO local.phone_contracts (device_uid, desired_state) VALUES ($1, 'active')",
            [(u,) for u in uids])
    return uids


async def test_devices_job_renews_tokens_that_expire_mid_run(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """Tokens that expire every second during a paced run are renewed; the run completes."""
    state, running = sim
    uids = await seed_known(db, state)
    state.set_token_lifetime(1)
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password, rate=12)
        result = await run_job(db, neolock.NeoLockDevicesJob(db, client))
        assert client.token_fetches >= 2  # the token expired and was renewed during the run
    assert result.outcome is Outcome.OK, result.error
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM vendor.phones") == len(uids)


async def test_devices_job_rides_out_429_storms_and_5xx(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """A strict 10/s vendor limit (vs the client's 90/s) and 30% 5xx still end in a complete run."""
    state, running = sim
    uids = await seed_known(db, state)
    state.limiter.limit = 10
    running.faults.set("/api/clients/devices/{deviceUid}", FaultSpec(error_rate=0.3))
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password, max_retries=10)
        result = await run_job(db, neolock.NeoLockDevicesJob(db, client))
    assert result.outcome is Outcome.OK, result.error
    assert running.counters.rate_limited > 0
    assert result.requests > len(uids)  # retries are counted in the run's requests
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM vendor.phones") == len(uids)


async def test_a_device_that_keeps_failing_is_kept_and_never_marked_gone(db: Database) -> None:
    """A partial run records its failure, keeps good rows, and marks only 404'd devices gone."""
    state = neosim.NeoLockSim(seed=5, devices=30)
    uids = await seed_known(db, state)
    broken = {"uid": ""}
    async with sim_failing(state, lambda r: bool(broken["uid"]) and r.path.endswith(broken["uid"])
                           ) as running, aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password, max_retries=1)
        job = neolock.NeoLockDevicesJob(db, client, detail_max_age=dt.timedelta(0))  # all due
        assert (await run_job(db, job)).outcome is Outcome.OK
        state.remove_device(uids[0])  # deleted at the vendor: 404 → gone
        broken["uid"] = uids[1]
        result = await run_job(db, job)
    broken_uid = uids[1]
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "1 device(s) could not be read" in result.error
    async with db.connection() as conn:
        rows = {r["device_uid"]: r for r in await conn.fetch(
            "SELECT device_uid, gone_at, vendor_state FROM vendor.phones")}
    assert rows[uids[0]]["gone_at"] is not None
    assert rows[broken_uid]["gone_at"] is None and rows[broken_uid]["vendor_state"] is not None
    assert sum(1 for r in rows.values() if r["gone_at"] is None) == len(uids) - 1


async def test_a_no_change_resync_writes_no_rows(
        db: Database, sim: tuple[neosim.NeoLockSim, Running], client: NeoLockClient) -> None:
    """Re-reading unchanged devices writes nothing; a changed device writes exactly one row."""
    state, _ = sim
    uids = await seed_known(db, state)
    found = await neolock.refresh(client, uids)
    assert (await neolock.store(db, found)).written == len(uids)
    again = await neolock.refresh(client, uids)
    assert (await neolock.store(db, again)).written == 0
    target = next(u for u in uids if state.devices[u].status == "Enrolled")
    state.set_state(target, "Locked")
    changed = await neolock.refresh(client, uids)
    result = await neolock.store(db, changed)
    assert (result.inserted, result.updated) == (0, 1)


async def test_report_phones_maps_console_state_and_drift(
        db: Database, sim: tuple[neosim.NeoLockSim, Running], client: NeoLockClient) -> None:
    """report.phones shows the console name of each state and flags contracts the vendor breaks."""
    state, _ = sim
    uids = sorted(state.devices)
    enrolled = next(u for u in uids if state.devices[u].status == "Enrolled")
    locked = next(u for u in uids if state.devices[u].status == "Locked")
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO local.phone_contracts (device_uid, desired_state) VALUES ($1, $2)",
            [(enrolled, "locked"), (locked, "locked")])
    await neolock.store(db, await neolock.refresh(client, uids))
    async with db.connection() as conn:
        rows = {r["device_uid"]: r for r in await conn.fetch("SELECT * FROM report.phones")}
    assert rows[enrolled]["console_state"] == "Active"
    assert rows[enrolled]["in_drift"] is True  # must be locked, vendor says active
    assert rows[locked]["in_drift"] is False
    assert rows[locked]["console_state"] == "Locked"
    accepted = [r for r in rows.values() if r["vendor_state"] == "Accepted"]
    assert all(r["console_state"] == "Activating" for r in accepted)

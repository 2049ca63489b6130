"""The K3 pull jobs against the Codelocks simulator and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.catalog import build_jobs
from syncd.jobs.runner import JobRunner, Outcome
from tests.clocks import Clock
from tests.k3_env import START, k3_context, k3_jobs, k3_settings, run_all, usage_calls


@pytest.fixture
def clock() -> Clock:
    """The clock the simulator and syncd share, standing at START until the test moves it."""
    return Clock(START)


@pytest.fixture
def sim(clock: Clock) -> CodelocksSim:
    """A Business 1 tenant with 5 locks on two accounts."""
    return CodelocksSim(seed=11, locks=5, audit_per_lock=12, now=clock.now)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def rows(db: Database, sql: str) -> list[dict[str, object]]:
    """Rows of a query as dicts."""
    async with db.connection() as conn:
        return [dict(r) for r in await conn.fetch(sql)]


async def test_sync_once_fills_the_views_and_the_ledger_equals_the_vendors_count(
        db: Database, db_dsn: str, sim: CodelocksSim, running: Running, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd sync k3-locks k3-audit k3-clients --once` fills report.k3_* from the simulator and
    report.api_usage counts exactly the calls the simulator counted."""
    sim.now = Clock().now  # the CLI runs on the real clock
    async with db.connection() as conn:
        lock = next(iter(sim.locks.values()))
        email = next(iter(sim.clients[lock.lock_id]), "nobody@example.com")
        await conn.execute("INSERT INTO local.k3_clients (lock_id, email, access_type) VALUES "
                           "($1, $2, 'STANDARD'), ($1, 'expected.only@example.com', 'STANDARD')",
                           lock.lock_id, email)
    keys = ", ".join(f'"{k}"' for k in sim.access_keys)
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                   f'access_keys = [{keys}]\nplan = "Business 1"\n')
    code = await asyncio.to_thread(main, ["--config", str(cfg), "sync", "k3-locks", "k3-audit",
                                          "k3-clients", "--once"])
    out = capsys.readouterr().out
    assert code == 0, out
    locks = await rows(db, "SELECT * FROM report.k3_locks")
    assert {r["lock_id"] for r in locks} == set(sim.locks)
    for row in locks:
        sim_lock = sim.locks[str(row["lock_id"])]
        assert (row["lock_name"], row["battery_status"], row["firmware_version"]) == (
            sim_lock.name, sim_lock.battery_status, sim_lock.firmware)
        assert row["battery_updated_at"] is not None and row["last_audit_at"] is not None
    audit = await rows(db, "SELECT lock_id, audit_entry_id, entry_type FROM report.k3_audit")
    expected = {(e.lock_id, e.entry_id, e.entry_type) for entries in sim.audit.values()
                for e in entries}
    assert {(r["lock_id"], r["audit_entry_id"], r["entry_type"]) for r in audit} == expected
    clients = await rows(db, "SELECT * FROM report.k3_clients")
    listed = {(c.lock_id, c.email, c.status) for cs in sim.clients.values() for c in cs.values()}
    assert {(r["lock_id"], r["email"], r["status"]) for r in clients if r["status"] != "missing"
            } == listed
    by_email = {r["email"]: r for r in clients}
    assert by_email["expected.only@example.com"]["status"] == "missing"
    assert by_email["expected.only@example.com"]["expected"] is True
    assert await usage_calls(db) == sim.quota_used(UTILITY) > 0


async def test_late_entries_are_caught_by_the_lookback_without_duplicates(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """An entry that reaches the server late (higher id, older date, mid-list in date order) is
    stored by the next run, and re-reading known entries never stores one twice."""
    settings = k3_settings(sim, running, audit_page_size=5, audit_lookback_pages=3)
    jobs = k3_jobs(k3_context(db, settings, http, clock))
    await run_all(db, jobs)
    lock_id = next(iter(sim.locks))
    clock.advance(hours=2)
    for _ in range(3):
        sim.add_audit_entry(lock_id)
    late = sim.add_late_audit_entry(lock_id, age=dt.timedelta(hours=30))
    position = [e.entry_id for e in sim.audit_page(lock_id, 1, 100, "descending")].index(
        late.entry_id)
    assert position >= 5  # not on the first page: only the lookback can find it
    result = await JobRunner(db).run(jobs["k3-audit"])
    assert result.outcome is Outcome.OK, result.error
    stored = await rows(db, "SELECT lock_id, audit_entry_id, lateness FROM report.k3_audit")
    ids = [(r["lock_id"], r["audit_entry_id"]) for r in stored]
    assert len(ids) == len(set(ids))
    assert (lock_id, late.entry_id) in ids
    assert {(e.lock_id, e.entry_id) for es in sim.audit.values() for e in es} == set(ids)
    lateness = next(r["lateness"] for r in stored if r["audit_entry_id"] == late.entry_id)
    assert lateness.total_seconds() >= 30 * 3600  # type: ignore[attr-defined]


async def test_unknown_access_key_fails_the_run_keeps_the_rest_and_never_shows_the_key(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """An access key the vendor does not know fails k3-locks naming its position only; the other
    keys' locks are stored, and the key is in no log line, error or table."""
    bogus = "qq7bogus4z"
    settings = k3_settings(sim, running, access_keys=[*sim.access_keys, bogus])
    jobs = k3_jobs(k3_context(db, settings, http, clock))
    with capture_logs() as logs:
        result = await JobRunner(db).run(jobs["k3-locks"])
    assert result.outcome is Outcome.FAILED
    assert "number 3" in (result.error or "") and bogus not in (result.error or "")
    assert bogus not in repr(logs)
    assert {r["lock_id"] for r in await rows(db, "SELECT lock_id FROM report.k3_locks")} == set(
        sim.locks)
    async with db.connection() as conn:
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM "
                                   "vendor.k3_locks) t")
        runs = await conn.fetchval("SELECT string_agg(coalesce(error, ''), ' ') FROM ops.sync_runs")
    for key in [*sim.access_keys, bogus, sim.api_key]:
        assert key not in dump and key not in runs


async def test_vanished_lock_is_marked_gone_and_new_lock_appears(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """A lock unpaired at the vendor is marked gone (kept, not deleted); a new one is added."""
    jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock))
    await run_all(db, jobs)
    removed = next(iter(sim.locks))
    sim.remove_lock(removed)
    added = sim.add_lock()
    await run_all(db, jobs)
    locks = {r["lock_id"]: r for r in await rows(db, "SELECT * FROM report.k3_locks")}
    assert locks[removed]["gone_at"] is not None
    assert locks[added.lock_id]["gone_at"] is None


async def test_status_and_quota_show_use_projection_and_next_runs(
        db: Database, db_dsn: str, sim: CodelocksSim, running: Running, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """After a sync, `syncd quota --json` and `syncd status` report the calls used (as the vendor
    counted them), the quota and reserve, a projection and each K3 job's next planned run."""
    sim.now = Clock().now  # the CLI runs on the real clock
    keys = ", ".join(f'"{k}"' for k in sim.access_keys)
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[jobs.housekeeping]\nenabled = false\n'
                   f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                   f'access_keys = [{keys}]\nplan = "Business 1"\n'
                   '[status]\nexpect_daemon = false\n')  # `sync --once` only, no daemon
    assert await asyncio.to_thread(main, ["--config", str(cfg), "sync", "all", "--once"]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--config", str(cfg), "quota", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    utility = status["categories"]["utility"]
    assert (utility["calls"], utility["quota"], utility["reserve"]) == (
        sim.quota_used(UTILITY), 1000, 200)
    assert utility["calls"] <= utility["projected_as_planned"] <= 800 + utility["operator_calls"]
    assert {j["job"] for j in status["jobs"]} == {"k3-locks", "k3-audit", "k3-clients"}
    assert all(j["next_due_at"] is not None and j["interval_seconds"] for j in status["jobs"])
    assert status["audit_lateness_7d"]["entries"] > 0
    assert await asyncio.to_thread(main, ["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "Codelocks quota (Business 1)" in out and "k3-audit" in out


async def test_the_status_table_and_the_codelocks_block_agree_on_each_k3_jobs_next_run(
        db: Database, db_dsn: str, sim: CodelocksSim, running: Running, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd status` shows each K3 job's next run twice, in the job table and in the Codelocks
    block: the same instant in the same words, the planner's next run for enabled jobs and "-"
    for a disabled one (which `syncd quota` then calls disabled, not planned)."""
    sim.now = Clock().now  # the CLI runs on the real clock
    keys = ", ".join(f'"{k}"' for k in sim.access_keys)
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                   f'access_keys = [{keys}]\nplan = "Business 1"\n'
                   '[status]\nexpect_daemon = false\n')
    assert await asyncio.to_thread(main, ["--config", str(cfg), "sync", "k3-locks", "k3-audit",
                                          "k3-clients"]) == 0
    with cfg.open("a") as more:  # k3-clients ran (it has a plan), then was switched off
        more.write("[jobs.k3-clients]\nenabled = false\n")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[6] for line in out.splitlines()
             if line.startswith("k3-")}
    block = dict(re.findall(r"^  (k3-\S+) +next run (\S+): ", out, re.MULTILINE))
    assert table == block, out
    planned = {r["job"]: r["next_due_at"] for r in await rows(
        db, "SELECT job, next_due_at FROM ops.quota_plan")}
    for job in ("k3-locks", "k3-audit"):
        due = planned[job]
        assert isinstance(due, dt.datetime) and block[job] == due.isoformat(timespec="seconds")
    assert block["k3-clients"] == "-" and planned["k3-clients"] is not None
    assert "k3-clients  next run -: disabled ([jobs.k3-clients] enabled = false)" in out


async def test_a_lock_with_no_audit_yet_gets_its_first_entries(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """A newly paired lock with an empty audit trail is read again later, and its first entries
    are stored once; its cursor then holds their highest id."""
    jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock))
    added = sim.add_lock()
    await run_all(db, jobs)
    clock.advance(hours=1)
    entries = [sim.add_audit_entry(added.lock_id) for _ in range(3)]
    await run_all(db, jobs)
    await run_all(db, jobs)
    async with db.connection() as conn:
        stored = [r["audit_entry_id"] for r in await conn.fetch(
            "SELECT audit_entry_id FROM report.k3_audit WHERE lock_id = $1", added.lock_id)]
        cursor = await conn.fetchval("SELECT value FROM ops.cursors WHERE name = $1",
                                     f"k3-audit:{added.lock_id}")
    assert sorted(stored) == [e.entry_id for e in entries]
    assert cursor == {"high": entries[-1].entry_id, "walk": None}


async def test_scheduled_jobs_run_only_when_the_planner_says_they_are_due(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock, make_settings: Any) -> None:
    """The daemon's K3 jobs (gated) tick often but call the vendor only once their planned
    interval has passed, and a tick with nothing due leaves no run row; `--once` jobs run
    regardless."""
    settings = make_settings(codelocks=k3_settings(sim, running).model_dump(mode="json") | {
        "api_key": sim.api_key, "access_keys": list(sim.access_keys)})
    built = build_jobs(settings, db, http)
    assert {"k3-locks", "k3-audit", "k3-clients"} <= set(built)
    assert built["k3-audit"].default_interval == 900
    gated = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock), gated=True)
    await run_all(db, gated)
    sent = running.counters.requests
    async with db.connection() as conn:
        runs = await conn.fetchval("SELECT count(*) FROM ops.sync_runs")
    clock.advance(minutes=15)
    idle = await run_all(db, gated)
    assert running.counters.requests == sent  # nothing due 15 minutes later
    assert {r.outcome.value for r in idle} == {"skipped"}
    assert all((r.error or "").startswith("next planned run at") for r in idle)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ops.sync_runs") == runs
        due = await conn.fetchval("SELECT min(next_due_at) FROM ops.quota_plan")
    clock.move_to(due)
    await run_all(db, gated)
    assert running.counters.requests > sent
    forced = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock), gated=False)
    before = running.counters.requests
    await run_all(db, forced)
    assert running.counters.requests > before

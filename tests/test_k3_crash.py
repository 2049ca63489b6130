"""kill -9 in the middle of k3-audit: the next run resumes the walk, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from tests.clocks import Clock
from tests.k3_env import k3_context, k3_jobs, k3_settings, usage_calls

AUDIT_ROUTE = "/u/1/k3connect/{id}/audit"
PAGE = 10


@pytest.fixture
def sim() -> CodelocksSim:
    """One lock with 300 audit entries (31 pages of 10), on the real clock."""
    return CodelocksSim(seed=21, locks=1, accounts=1, audit_per_lock=300)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


async def test_kill_9_mid_audit_resumes_where_it_stopped_without_gaps_or_duplicates(
        db: Database, db_dsn: str, sim: CodelocksSim, running: Running, tmp_path: Path) -> None:
    """A `syncd sync k3-audit --once` killed with SIGKILL part-way keeps the pages it committed;
    the next run resumes the walk from its cursor (not from page 1), stores every entry exactly
    once, and the ledger never counts fewer calls than the vendor did."""
    clock = Clock(dt.datetime.now(dt.UTC))
    async with aiohttp.ClientSession() as http:
        settings = k3_settings(sim, running, audit_page_size=PAGE)
        jobs = k3_jobs(k3_context(db, settings, http, clock))
        assert (await JobRunner(db).run(jobs["k3-locks"])).outcome is Outcome.OK
        keys = ", ".join(f'"{k}"' for k in sim.access_keys)
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                       f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                       f'access_keys = [{keys}]\naudit_page_size = {PAGE}\nrate_limit = 1000\n')
        running.faults.set(AUDIT_ROUTE, FaultSpec(latency=0.1))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncd", "--config", str(cfg), "sync", "k3-audit", "--once",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        for _ in range(600):
            if running.counters[AUDIT_ROUTE].requests >= 8:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await _until_its_locks_are_gone(db)
        first = running.counters[AUDIT_ROUTE].requests
        async with db.connection() as conn:
            kept = await conn.fetchval("SELECT count(*) FROM vendor.k3_audit")
        assert 0 < kept < 300  # killed part-way, with committed pages kept
        running.faults.clear()
        result = await JobRunner(db).run(jobs["k3-audit"])
        assert result.outcome is Outcome.OK, result.error
    total = running.counters[AUDIT_ROUTE].requests
    pages = -(-len(sim.audit[next(iter(sim.locks))]) // PAGE)
    assert total <= pages + 2, (first, total)  # resumed, not started again from page 1
    async with db.connection() as conn:
        stored = [(r["lock_id"], r["audit_entry_id"]) for r in await conn.fetch(
            "SELECT lock_id, audit_entry_id FROM vendor.k3_audit")]
    assert len(stored) == len(set(stored))
    assert set(stored) == {(e.lock_id, e.entry_id) for es in sim.audit.values() for e in es}
    counted = await usage_calls(db)
    assert sim.quota_used(UTILITY) <= counted <= sim.quota_used(UTILITY) + 1


async def _until_its_locks_are_gone(db: Database) -> None:
    """Wait until PostgreSQL has ended the killed process's session (and so released its job
    lock): the server learns of a vanished client only when it next reads from its socket."""
    for _ in range(500):
        async with db.connection() as conn:
            held = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        if held == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the killed process's advisory lock was never released")

"""The job runner: advisory locks, run records, transition logging, scheduling and draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from syncd.cli.main import main
from syncd.db import locks, ops
from syncd.db.pool import Database
from syncd.errors import VendorFault
from syncd.jobs.runner import JobRunner, Outcome
from syncd.jobs.scheduler import Scheduler
from syncd.settings.core import Settings
from syncd.settings.service import JobSettings
from syncd.sync.base import RunContext
from syncd.vendors import usage
from tests.waiting import wait_for


class ScriptedJob:
    """A job whose runs succeed or fail as the test scripts them (a test double of a *job*)."""

    default_interval = 60.0

    def __init__(self, name: str, script: list[bool], hold: float = 0.0) -> None:
        self.name = name
        self.script = script
        self.hold = hold
        self.runs = 0
        self.starts: list[float] = []  # monotonic time of each run's start

    async def run(self, ctx: RunContext) -> None:
        ok = self.script[min(self.runs, len(self.script) - 1)]
        self.runs += 1
        self.starts.append(time.monotonic())
        for _ in range(3):  # as VendorHttp does for each attempt it sends
            usage.record("testvendor", "/things/{id}")
        ctx.add_items(5)
        if self.hold:
            await asyncio.sleep(self.hold)
        if not ok:
            raise VendorFault("testvendor", "502 Tertiary endpoint error")


async def test_runs_are_recorded_with_items_requests_and_errors(db: Database) -> None:
    """Each run leaves one ops.sync_runs row with its status, counts and error, visible in report."""
    runner = JobRunner(db)
    job = ScriptedJob("demo-job", [True, False])
    ok = await runner.run(job)
    failed = await runner.run(job)
    assert (ok.outcome, failed.outcome) == (Outcome.OK, Outcome.FAILED)
    assert failed.error == "testvendor: 502 Tertiary endpoint error"
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT job, status, items, requests, error, finished_at "
                                "FROM report.sync_runs ORDER BY started_at")
    assert [(r["status"], r["items"], r["requests"]) for r in rows] == [("ok", 5, 3), ("failed", 5, 3)]
    assert rows[1]["error"] == "testvendor: 502 Tertiary endpoint error"
    assert all(r["finished_at"] is not None for r in rows)


async def test_a_second_runner_skips_a_job_whose_lock_is_held(db: Database, db_dsn: str) -> None:
    """While another session holds the job's advisory lock, the runner skips and says so."""
    other = await asyncpg.connect(db_dsn)
    job = ScriptedJob("locked-job", [True])
    try:
        async with locks.advisory_lock(other, "locked-job"):
            with capture_logs() as logs:
                result = await JobRunner(db).run(job)
        assert result.outcome is Outcome.SKIPPED
        assert job.runs == 0
        assert any(e["event"] == "job.skipped" and e["job"] == "locked-job" for e in logs)
        assert (await JobRunner(db).run(job)).outcome is Outcome.OK  # released with the block
    finally:
        await other.close()


async def test_concurrent_runners_run_a_job_once_per_tick(db_dsn: str) -> None:
    """Three replicas ticking at once: exactly one runs the job, the others skip."""
    dbs = [await Database.connect(db_dsn) for _ in range(3)]
    try:
        job = ScriptedJob("shared", [True], hold=0.3)
        results = await asyncio.gather(*(JobRunner(d).run(job) for d in dbs))
        assert sorted(r.outcome.value for r in results) == ["ok", "skipped", "skipped"]
        assert job.runs == 1
    finally:
        for d in dbs:
            await d.close()


async def test_transitions_are_logged_once_not_every_failure(db: Database) -> None:
    """healthy → failing logs one warning; further failures don't; recovery logs once."""
    runner = JobRunner(db)
    job = ScriptedJob("flaky", [True, False, False, False, True, True])
    with capture_logs() as logs:
        for _ in range(6):
            await runner.run(job)
    events = [e["event"] for e in logs if e["event"] in ("job.failing", "job.recovered")]
    assert events == ["job.failing", "job.recovered"]
    assert sum(1 for e in logs if e["event"] == "job.run") == 6


async def test_a_run_left_running_by_a_dead_runner_is_marked_abandoned(db: Database) -> None:
    """A 'running' row whose runner died is closed as failed by the next holder of the lock."""
    await ops.start_run(db, "orphaned", "dead-host:1")
    await JobRunner(db).run(ScriptedJob("orphaned", [True]))
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, error FROM ops.sync_runs WHERE job = 'orphaned' "
                                "ORDER BY id")
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "abandoned" in rows[0]["error"]


async def test_secrets_are_scrubbed_from_stored_errors(db: Database) -> None:
    """An error text that contains a configured secret is stored redacted."""

    class Leaky(ScriptedJob):
        async def run(self, ctx: RunContext) -> None:
            raise VendorFault("v", "bad answer for token tok-SECRET-123")

    runner = JobRunner(db, scrub=lambda s: s.replace("tok-SECRET-123", "[REDACTED]"))
    result = await runner.run(Leaky("leaky", [True]))
    stored = await ops.previous_status(db, "leaky", -1)
    assert stored == "failed"
    assert result.error == "v: bad answer for token [REDACTED]"
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ops.sync_runs WHERE error LIKE "
                                   "'%tok-SECRET-123%'") == 0


async def test_scheduler_runs_jobs_on_their_interval_and_drains_on_stop(db: Database) -> None:
    """A job with a 0.3 s interval runs again and again, each start at least one interval after
    the previous one (a tick, not a loop); stop waits for the run in progress to finish."""
    job = ScriptedJob("ticker", [True], hold=0.1)
    scheduler = Scheduler(JobRunner(db), {"ticker": job},
                          {"ticker": JobSettings(interval_seconds=0.3, jitter_seconds=0)})
    scheduler.start()
    await wait_for(lambda: job.runs >= 4, what="four runs of the ticker")
    await scheduler.stop(deadline=5.0)
    assert job.runs >= 4
    gaps = [b - a for a, b in zip(job.starts[1:], job.starts[2:], strict=False)]  # after the first
    assert all(gap >= 0.3 * 0.9 for gap in gaps), gaps
    async with db.connection() as conn:
        statuses = [r["status"] for r in await conn.fetch(
            "SELECT status FROM ops.sync_runs WHERE job = 'ticker'")]
    assert statuses and all(s == "ok" for s in statuses)  # none was cut off mid-run


async def test_scheduler_cancels_jobs_past_the_deadline(db: Database) -> None:
    """A job still running when the drain deadline passes is cancelled, so shutdown is bounded."""
    job = ScriptedJob("slowpoke", [True], hold=30)
    scheduler = Scheduler(JobRunner(db), {"slowpoke": job},
                          {"slowpoke": JobSettings(interval_seconds=0.1, jitter_seconds=0)})
    scheduler.start()
    await wait_for(lambda: job.runs == 1, what="the slow job's run to start")
    started = asyncio.get_running_loop().time()
    await scheduler.stop(deadline=0.5)
    assert asyncio.get_running_loop().time() - started < 5  # bounded, not 30 s
    assert job.runs == 1


def test_disabled_jobs_are_not_scheduled(db: Database) -> None:
    """`[jobs.<name>] enabled = false` keeps a job out of the schedule."""
    scheduler = Scheduler(JobRunner(db), {"a": ScriptedJob("a", [True]), "b": ScriptedJob("b", [True])},
                          {"b": JobSettings(enabled=False), "a": JobSettings(interval_seconds=7)})
    assert scheduler.schedule == {"a": 7, "b": None}


def test_sync_once_runs_housekeeping_and_reports(make_settings: Callable[..., Settings],
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd sync housekeeping --once` runs the job through the runner and exits 0."""
    cfg = tmp_path / "c.toml"
    settings = make_settings()
    assert settings.database.url is not None
    cfg.write_text(f'data_dir = "{tmp_path}"\n'
                   f'[database]\nurl = "{settings.database.url.get_secret_value()}"\n')
    assert main(["--config", str(cfg), "sync", "housekeeping", "--once"]) == 0
    assert "housekeeping: ok" in capsys.readouterr().out
    assert main(["--config", str(cfg), "sync", "no-such-job", "--once"]) == 2


async def test_jobs_first_run_soon_after_start_not_one_interval_later(db: Database) -> None:
    """A job with an hourly interval runs right after the scheduler starts (within its jitter)."""
    job = ScriptedJob("hourly", [True])
    scheduler = Scheduler(JobRunner(db), {"hourly": job},
                          {"hourly": JobSettings(interval_seconds=3600, jitter_seconds=0.2)})
    scheduler.start()
    await wait_for(lambda: job.runs > 0, timeout=5.0, what="the first run")
    await scheduler.stop(deadline=5.0)
    assert job.runs == 1

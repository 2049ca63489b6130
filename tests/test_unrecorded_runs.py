"""A run that ends while the database cannot record it (PostgreSQL restarting) does not stay
'running' on a replica that keeps beating: the runner remembers it and records it as failed once
the database answers, and never overwrites a run something else recorded meanwhile."""

from __future__ import annotations

import asyncio
import contextlib

from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable
from syncd.jobs.runner import JobRunner
from syncd.jobs.scheduler import Scheduler
from syncd.settings.service import JobSettings
from syncd.sync.base import RunContext
from tests.waiting import wait_for


class LosesTheDatabase:
    """A job whose queries meet a database that went away mid-run (as every job's would)."""

    default_interval = 3600.0

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: RunContext) -> None:
        raise DatabaseUnavailable("database unavailable: ConnectionResetError: server closed")


async def _status(db: Database, run_id: int) -> tuple[str, str | None]:
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT status, error FROM ops.sync_runs WHERE id = $1", run_id)
    assert row is not None
    return row["status"], row["error"]


async def _only_run(db: Database, job: str) -> int:
    async with db.connection() as conn:
        return int(await conn.fetchval("SELECT id FROM ops.sync_runs WHERE job = $1", job))


async def test_a_run_the_database_could_not_record_is_failed_once_it_answers(db: Database) -> None:
    """The run raised DatabaseUnavailable, so its row was left 'running'; settle_unrecorded()
    fails it with the reason, and forgets it."""
    runner = JobRunner(db)
    with contextlib.suppress(DatabaseUnavailable):
        await runner.run(LosesTheDatabase("lost"))
    run_id = await _only_run(db, "lost")
    assert await _status(db, run_id) == ("running", None)
    assert list(runner.unrecorded) == [run_id]
    assert await runner.settle_unrecorded() == 1
    status, error = await _status(db, run_id)
    assert status == "failed" and error is not None
    assert error.startswith("the database was lost while it ran")
    assert runner.unrecorded == {}


async def test_settling_never_overwrites_a_run_recorded_meanwhile(db: Database) -> None:
    """A run that another replica's sweep already closed keeps what that sweep wrote."""
    runner = JobRunner(db)
    with contextlib.suppress(DatabaseUnavailable):
        await runner.run(LosesTheDatabase("swept"))
    run_id = await _only_run(db, "swept")
    async with db.connection() as conn:
        await conn.execute("UPDATE ops.sync_runs SET status = 'failed', finished_at = now(), "
                           "error = 'abandoned: swept' WHERE id = $1", run_id)
    await runner.settle_unrecorded()
    assert await _status(db, run_id) == ("failed", "abandoned: swept")


async def test_the_scheduler_settles_unrecorded_runs_while_it_watches(db: Database) -> None:
    """In the daemon, the scheduler's supervised loop records such runs without a new run of
    any job being needed."""
    runner = JobRunner(db)
    scheduler = Scheduler(runner, {"lost2": LosesTheDatabase("lost2")},
                          {"lost2": JobSettings(interval_seconds=3600, jitter_seconds=0)})
    watching = asyncio.create_task(scheduler.run())
    try:
        await wait_for(lambda: bool(runner.unrecorded), what="the run that lost the database")
        run_id = next(iter(runner.unrecorded))

        async def settled() -> bool:
            return (await _status(db, run_id))[0] == "failed"

        await wait_for(settled, timeout=30, what="the scheduler to record the lost run")
    finally:
        await scheduler.stop(deadline=5.0)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching

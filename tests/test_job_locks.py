"""Job locks on one lock connection per process; job slots; a pool that runs dry fails clearly.

Issue 19 item 1: a run used to hold a pooled connection for its lock for the whole run and need a
second one for its work, so a dozen jobs starting at once deadlocked the daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from syncd.db import ops
from syncd.db.locks import JobLocks
from syncd.db.pool import ADVISORY_NAMESPACE, Database
from syncd.errors import PoolExhausted
from syncd.jobs.runner import JobRunner, Outcome
from syncd.metrics import Metrics
from syncd.sync.base import RunContext


class HeldJob:
    """A job whose run lasts until the test lets it end (a test double of a *job*)."""

    default_interval = 60.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0
        self.cancelled = False

    async def run(self, ctx: RunContext) -> None:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class OverlapWatch:
    """A job that records how many runs of itself were ever in progress at once."""

    default_interval = 60.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.active = 0
        self.most = 0
        self.runs = 0

    async def run(self, ctx: RunContext) -> None:
        self.active += 1
        self.most = max(self.most, self.active)
        self.runs += 1
        try:
            await asyncio.sleep(0.02)  # stay inside the run while other runners try
        finally:
            self.active -= 1


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def pg(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection of the test's own, to watch syncd's sessions from outside."""
    conn = await asyncpg.connect(db_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def job_locks(db_dsn: str) -> AsyncIterator[JobLocks]:
    """A process's lock connection, closed after the test."""
    async with JobLocks(db_dsn) as locks:
        yield locks


async def held_locks(pg: asyncpg.Connection) -> list[str]:
    """application_name of the session holding each of syncd's advisory locks on this database."""
    rows = await pg.fetch(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ADVISORY_NAMESPACE)
    return [r["application_name"] for r in rows]


async def lock_sessions(pg: asyncpg.Connection) -> int:
    """How many syncd lock connections are open on this database."""
    return int(await pg.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                 "'syncd locks' AND datname = current_database()"))


async def test_running_jobs_hold_their_locks_on_one_lock_connection_not_on_pooled_ones(
        db: Database, job_locks: JobLocks, pg: asyncpg.Connection) -> None:
    """Five jobs in progress at once: their five locks are all held by the one lock connection,
    and not one pooled connection is lent out while the runs wait on their vendors."""
    runner = JobRunner(db, locks=job_locks)
    jobs = [HeldJob(f"held-{n}") for n in range(5)]
    runs = [asyncio.create_task(runner.run(job)) for job in jobs]
    for job in jobs:
        await asyncio.wait_for(job.started.wait(), 30)
    assert await held_locks(pg) == ["syncd locks"] * 5
    assert await lock_sessions(pg) == 1
    assert db.stats().in_use == 0
    assert job_locks.held == sorted(job.name for job in jobs)
    for job in jobs:
        job.release.set()
    assert [r.outcome for r in await asyncio.gather(*runs)] == [Outcome.OK] * 5
    assert await held_locks(pg) == []  # each released with its run; the connection stays
    assert await lock_sessions(pg) == 1


async def test_a_job_never_runs_twice_at_once_in_one_process(db: Database,
                                                             job_locks: JobLocks) -> None:
    """Two runs of one job started together on one lock connection (where PostgreSQL's session
    locks would let the same session take the lock twice): one runs, the other skips."""
    runner = JobRunner(db, locks=job_locks)
    job = HeldJob("twice")
    first = asyncio.create_task(runner.run(job))
    await asyncio.wait_for(job.started.wait(), 30)
    second = await runner.run(job)
    job.release.set()
    assert ((await first).outcome, second.outcome) == (Outcome.OK, Outcome.SKIPPED)
    assert job.runs == 1


async def test_two_processes_never_overlap_a_job(db_dsn: str) -> None:
    """Two replicas (each its own pool and lock connection) run the same job back to back 25
    times each: the job never had two runs in progress at once, and every attempt either ran
    or skipped."""
    dbs = [await Database.connect(db_dsn, max_size=2) for _ in range(2)]
    locks = [JobLocks(db_dsn) for _ in range(2)]
    job = OverlapWatch("contended")
    try:
        async def replica(db: Database, job_locks: JobLocks) -> list[Outcome]:
            runner = JobRunner(db, locks=job_locks)
            return [(await runner.run(job)).outcome for _ in range(25)]

        outcomes = [o for batch in await asyncio.gather(
            *(replica(d, lk) for d, lk in zip(dbs, locks, strict=True))) for o in batch]
    finally:
        for lk in locks:
            await lk.close()
        for d in dbs:
            await d.close()
    assert job.most == 1
    assert outcomes.count(Outcome.OK) == job.runs >= 1
    assert outcomes.count(Outcome.OK) + outcomes.count(Outcome.SKIPPED) == 50


async def test_a_run_waiting_for_a_slot_holds_nothing_and_is_not_running(
        db: Database, job_locks: JobLocks, pg: asyncpg.Connection) -> None:
    """With one slot, a second job waits: it is counted as waiting, has no run row, no lock and
    no connection; it runs once the first run ends."""
    metrics = Metrics()
    runner = JobRunner(db, metrics, locks=job_locks, slots=1)
    first, second = HeldJob("slot-first"), HeldJob("slot-second")
    first_run = asyncio.create_task(runner.run(first))
    await asyncio.wait_for(first.started.wait(), 30)
    second_run = asyncio.create_task(runner.run(second))

    async def waiting() -> bool:
        return metrics.registry.get_sample_value("syncd_job_runs_waiting") == 1

    await until(waiting, "the second run to wait for a slot")
    running = [r["job"] for r in await pg.fetch(
        "SELECT job FROM ops.sync_runs WHERE status = 'running'")]
    assert running == ["slot-first"]
    assert job_locks.held == ["slot-first"]
    assert len(await held_locks(pg)) == 1
    assert db.stats().in_use == 0
    assert metrics.registry.get_sample_value("syncd_job_runs_active") == 1
    first.release.set()
    await asyncio.wait_for(second.started.wait(), 30)
    second.release.set()
    assert ((await first_run).outcome, (await second_run).outcome) == (Outcome.OK, Outcome.OK)


async def test_a_run_whose_lock_connection_dies_is_stopped_recorded_and_counted(
        db: Database, job_locks: JobLocks, pg: asyncpg.Connection) -> None:
    """The server ends the lock connection mid-run (as a PostgreSQL restart does): the lock is
    gone, so the run is cancelled at once, recorded as failed saying why, and counted; the
    next run reconnects and runs."""
    metrics = Metrics()
    runner = JobRunner(db, metrics, locks=job_locks)
    job = HeldJob("cut-off")
    run = asyncio.create_task(runner.run(job))
    await asyncio.wait_for(job.started.wait(), 30)
    assert await pg.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE application_name = 'syncd locks' "
                             "AND datname = current_database()") == 1
    result = await asyncio.wait_for(run, 30)  # a bound on a hang, not a timing assertion
    assert result.outcome is Outcome.FAILED
    assert job.cancelled
    assert result.error is not None and "lock was lost" in result.error
    row = await pg.fetchrow("SELECT status, error FROM ops.sync_runs WHERE job = 'cut-off'")
    assert row is not None and (row["status"], row["error"]) == ("failed", result.error)
    assert metrics.registry.get_sample_value("syncd_job_locks_lost_total",
                                             {"job": "cut-off"}) == 1
    again = HeldJob("cut-off")
    again.release.set()
    assert (await runner.run(again)).outcome is Outcome.OK
    assert await lock_sessions(pg) == 1


async def test_an_exhausted_pool_fails_naming_the_pool_and_is_counted_rather_than_hanging(
        db_dsn: str, job_locks: JobLocks) -> None:
    """A job that needs a second connection of a one-connection pool (the old deadlock's shape)
    waits database.acquire_timeout_seconds, then its run fails with an error naming the pool,
    the run is recorded, and syncd_db_acquire_timeouts_total{pool} counts it."""

    class Greedy:
        name = "greedy"
        default_interval = 60.0

        async def run(self, ctx: RunContext) -> None:
            async with ctx.db.connection():
                await ctx.db.fetchval("advisory_key", "anything")

    jobs_db = await Database.connect(db_dsn, max_size=1, name="jobs", acquire_timeout=0.3)
    metrics = Metrics()
    metrics.pools.watch(jobs_db)
    try:
        result = await asyncio.wait_for(JobRunner(jobs_db, metrics, locks=job_locks)
                                        .run(Greedy()), 30)
        assert result.outcome is Outcome.FAILED
        assert result.error == ("database unavailable: no connection free in the jobs pool "
                                "within 0.3s (1 of 1 in use)")
        assert await ops.previous_status(jobs_db, "greedy", -1) == "failed"
        with pytest.raises(PoolExhausted, match="jobs pool"):
            async with jobs_db.connection(), jobs_db.connection():
                pass
    finally:
        await jobs_db.close()
    text = metrics.render().decode()
    assert 'syncd_db_acquire_timeouts_total{pool="jobs"} 2.0' in text
    assert 'syncd_db_pool_size{pool="jobs"} 1.0' in text


async def test_a_cancelled_run_gives_its_lock_back(db: Database, job_locks: JobLocks,
                                                   pg: asyncpg.Connection) -> None:
    """A run cancelled mid-way (the drain deadline passed) stops its job and releases its lock
    on the shared lock connection, so the job can run again at once."""
    runner = JobRunner(db, locks=job_locks)
    job = HeldJob("cancelled")
    run = asyncio.create_task(runner.run(job))
    await asyncio.wait_for(job.started.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert job.cancelled

    async def released() -> bool:
        return job_locks.held == [] and await held_locks(pg) == []

    await until(released, "the cancelled run's lock to be released")
    again = HeldJob("cancelled")
    again.release.set()
    assert (await runner.run(again)).outcome is Outcome.OK

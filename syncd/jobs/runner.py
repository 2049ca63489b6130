"""Runs one job under its PostgreSQL advisory lock, recording `ops.sync_runs` and health.

The same code path serves the scheduler, `syncd sync JOB --once` and `syncd reconcile`. With N
replicas on one database, each tick runs a job once: whoever takes the lock runs it, the others
skip and say so. The lock lives on the process's lock connection (`JobLocks`), not on a pooled
connection, and at most `slots` runs proceed at once: a run waiting for a slot holds nothing and
is not "running" in `ops.sync_runs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from syncd.db import ops
from syncd.db.locks import JobLocks, Lease
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, JobLockLost, PoolExhausted, SyncdError
from syncd.sync.base import Gated, Job, ProgressCallback, RunContext
from syncd.transition import Transition
from syncd.vendors import usage
from syncd.vendors.usage import Usage

if TYPE_CHECKING:  # the type only: a one-shot command never loads prometheus_client
    from syncd.metrics import Metrics

log = structlog.get_logger(__name__)

RUNNER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Outcome(enum.StrEnum):
    """How a run ended."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # another runner holds the job's lock, or a planned job is not due


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The result of one attempt to run a job."""

    job: str
    outcome: Outcome
    items: int = 0
    requests: int = 0
    error: str | None = None
    seconds: float = 0.0
    usage: Usage | None = None  # the run's vendor requests by route (None when skipped)


class JobRunner:
    """Runs jobs with locking, run records, transition logging and metrics.

    `locks`: the process's lock connection (the daemon and the CLI pass one); without it each
    run opens a lock connection of its own for its duration. `slots`: how many runs may proceed
    at once (None: no bound).
    """

    def __init__(self, db: Database, metrics: Metrics | None = None,
                 scrub: Callable[[str], str] = lambda s: s, *, locks: JobLocks | None = None,
                 slots: int | None = None, replica: uuid.UUID | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.scrub = scrub
        self.locks = locks
        self._slots = asyncio.Semaphore(slots) if slots else None
        self.replica = replica  # its ops.replicas id: a live replica closes its runs if it dies
        self.after_run: Callable[[RunResult], None] | None = None  # e.g. "reconcile soon"
        # Runs that ended while the database could not record it (PostgreSQL restarting): this
        # replica keeps beating, so no other replica closes them; settle_unrecorded() does.
        self.unrecorded: dict[int, str] = {}

    async def run(self, job: Job, on_progress: ProgressCallback | None = None, *,
                  wait: float = 0.0) -> RunResult:
        """Run `job` once if its lock is free (waiting up to `wait` seconds for it); never raises
        for the job's own failures."""
        bound = log.bind(job=job.name)
        async with self._slot(), self._lock_connection() as job_locks:
            started = time.monotonic()
            async with job_locks.hold(job.name, wait=wait) as lease:
                if lease is None:
                    bound.info("job.skipped", reason="another runner holds the job's lock")
                    self._count(job.name, Outcome.SKIPPED, 0.0)
                    return RunResult(job.name, Outcome.SKIPPED)
                reason = await job.not_due() if isinstance(job, Gated) else None
                if reason is not None:  # a planned job's tick with nothing to do: no run row
                    bound.debug("job.not_due", reason=reason)
                    self._count(job.name, Outcome.SKIPPED, 0.0)
                    return RunResult(job.name, Outcome.SKIPPED, error=reason)
                return await self._run_locked(job, lease, bound, started, on_progress)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        if self.metrics is not None:
            self.metrics.job_runs_waiting.inc()
        try:
            await self._slots.acquire()
        finally:
            if self.metrics is not None:
                self.metrics.job_runs_waiting.dec()
        try:
            if self.metrics is not None:
                self.metrics.job_runs_active.inc()
            yield
        finally:
            self._slots.release()
            if self.metrics is not None:
                self.metrics.job_runs_active.dec()

    @contextlib.asynccontextmanager
    async def _lock_connection(self) -> AsyncIterator[JobLocks]:
        if self.locks is not None:
            yield self.locks
            return
        async with JobLocks(self.db.dsn) as own:
            yield own

    async def _run_locked(self, job: Job, lease: Lease,
                          bound: structlog.typing.FilteringBoundLogger, started: float,
                          on_progress: ProgressCallback | None) -> RunResult:
        await ops.abandon_runs(self.db, job.name)
        run_id = await ops.start_run(self.db, job.name, RUNNER_ID, self.replica)
        try:
            return await self._record(job, lease, bound, started, on_progress, run_id)
        except DatabaseUnavailable as err:
            self.unrecorded[run_id] = self.scrub(f"the database was lost while it ran: {err}")
            raise
        except asyncio.CancelledError:  # shutdown's deadline, or the lock lost mid-statement
            self.unrecorded[run_id] = "cancelled before it finished"
            raise

    async def settle_unrecorded(self) -> int:
        """Record as failed the runs that ended while the database was away; how many it did."""
        done = 0
        for run_id, error in list(self.unrecorded.items()):
            try:
                await ops.settle_run(self.db, run_id, error)
            except DatabaseUnavailable:
                break  # still away: the next call tries again
            del self.unrecorded[run_id]
            done += 1
        return done

    async def _record(self, job: Job, lease: Lease, bound: structlog.typing.FilteringBoundLogger,
                      started: float, on_progress: ProgressCallback | None,
                      run_id: int) -> RunResult:
        ctx = RunContext(db=self.db, job=job.name, on_progress=on_progress)
        error: str | None = None
        with structlog.contextvars.bound_contextvars(job=job.name, run_id=run_id), \
                usage.counting(ctx.usage):
            try:
                await _while_held(lease, job.run(ctx))
            except (PoolExhausted, JobLockLost) as err:  # the database answers: record it
                error = self.scrub(str(err))
                if isinstance(err, JobLockLost) and self.metrics is not None:
                    self.metrics.job_locks_lost.labels(job=job.name).inc()
            except DatabaseUnavailable:
                raise  # the run cannot even be recorded; the caller's health logic handles it
            except SyncdError as err:
                error = self.scrub(str(err))
            except Exception as err:  # a bug: keep the daemon alive, record it, show the trace
                error = self.scrub(f"internal error: {type(err).__name__}: {err}")
                bound.exception("job.crashed")
        outcome = Outcome.FAILED if error else Outcome.OK
        seconds = time.monotonic() - started
        await ops.finish_run(self.db, run_id, status=outcome.value, items=ctx.items,
                             requests=ctx.requests, error=error)
        previous = await ops.previous_status(self.db, job.name, run_id)
        # Log transitions, not every failure: the previous run (by any replica) is the state.
        health = Transition(bound, "job.failing", "job.recovered",
                            already_failing=previous == Outcome.FAILED.value)
        if outcome is Outcome.FAILED:
            health.fail(error=error)
        else:
            health.ok()
        bound.info("job.run", status=outcome.value, items=ctx.items, requests=ctx.requests,
                   seconds=round(seconds, 3))
        self._count(job.name, outcome, seconds)
        result = RunResult(job.name, outcome, ctx.items, ctx.requests, error, seconds, ctx.usage)
        if self.after_run is not None:
            self.after_run(result)
        return result

    def _count(self, job: str, outcome: Outcome, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.job_runs.labels(job=job, status=outcome.value).inc()
            if outcome is not Outcome.SKIPPED:
                self.metrics.job_seconds.labels(job=job).observe(seconds)


async def _while_held(lease: Lease, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` while `lease` holds; if the lock is lost first, cancel it and raise JobLockLost.

    The work runs as a task of its own (it inherits the run's context: log binding and request
    counting), so losing the lock can stop it wherever it is.
    """
    task = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(lease.lost.wait())
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the run itself was cancelled (drain deadline): so is the work
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    finally:
        lost.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise JobLockLost(f"stopped: the job's lock was lost ({lease.reason}), so another runner "
                          "may have started it")
    task.result()

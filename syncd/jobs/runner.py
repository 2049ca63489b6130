"""Runs one job under its PostgreSQL advisory lock, recording `ops.sync_runs` and health.

The same code path serves the scheduler and `syncd sync JOB --once`. With N replicas on one
database, each tick runs a job once: whoever takes the lock runs it, the others skip and say so.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
import time
import uuid
from collections.abc import Callable

import structlog

from syncd.db import locks, ops
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.metrics import Metrics
from syncd.sync.base import Gated, Job, ProgressCallback, RunContext
from syncd.transition import Transition
from syncd.vendors import usage
from syncd.vendors.usage import Usage

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
    """Runs jobs with locking, run records, transition logging and metrics."""

    def __init__(self, db: Database, metrics: Metrics | None = None,
                 scrub: Callable[[str], str] = lambda s: s,
                 replica: uuid.UUID | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.scrub = scrub
        self.replica = replica  # its ops.replicas id: a live replica closes its runs if it dies
        self.after_run: Callable[[RunResult], None] | None = None  # e.g. "reconcile soon"

    async def run(self, job: Job, on_progress: ProgressCallback | None = None) -> RunResult:
        """Run `job` once if its lock is free; never raises for the job's own failures."""
        bound = log.bind(job=job.name)
        started = time.monotonic()
        async with self.db.connection() as lock_conn, \
                locks.advisory_lock(lock_conn, job.name, wait=False) as got:
            if not got:
                bound.info("job.skipped", reason="another runner holds the job's lock")
                self._count(job.name, Outcome.SKIPPED, 0.0)
                return RunResult(job.name, Outcome.SKIPPED)
            reason = await job.not_due() if isinstance(job, Gated) else None
            if reason is not None:  # a planned job's tick with nothing to do: no run row
                bound.debug("job.not_due", reason=reason)
                self._count(job.name, Outcome.SKIPPED, 0.0)
                return RunResult(job.name, Outcome.SKIPPED, error=reason)
            return await self._run_locked(job, bound, started, on_progress)

    async def _run_locked(self, job: Job, bound: structlog.typing.FilteringBoundLogger,
                          started: float, on_progress: ProgressCallback | None) -> RunResult:
        await ops.abandon_runs(self.db, job.name)
        run_id = await ops.start_run(self.db, job.name, RUNNER_ID, self.replica)
        ctx = RunContext(db=self.db, job=job.name, on_progress=on_progress)
        error: str | None = None
        with structlog.contextvars.bound_contextvars(job=job.name, run_id=run_id), \
                usage.counting(ctx.usage):
            try:
                await job.run(ctx)
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

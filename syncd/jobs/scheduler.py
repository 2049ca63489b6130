"""APScheduler 3.11 wiring: one interval trigger per job, jittered, coalesced, never overlapping."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import Iterable, Mapping

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.jobs.runner import JobRunner
from syncd.settings.service import JobSettings
from syncd.sync.base import Job
from syncd.transition import Transition

log = structlog.get_logger(__name__)

WATCH_SECONDS = 5.0  # how often the supervised task checks that APScheduler still runs


def schedule_of(jobs: Iterable[Job], config: Mapping[str, JobSettings]) -> dict[str, float | None]:
    """Job name → configured interval (else the job's default), or None when disabled."""
    result: dict[str, float | None] = {}
    for job in jobs:
        conf = config.get(job.name) or JobSettings()
        result[job.name] = (conf.interval_seconds or job.default_interval) if conf.enabled else None
    return result


class Scheduler:
    """Runs each job on its interval; on stop, lets running jobs finish within a deadline."""

    def __init__(self, runner: JobRunner, jobs: Mapping[str, Job],
                 config: Mapping[str, JobSettings]) -> None:
        self.runner = runner
        self.jobs = dict(jobs)
        self.config = config
        self._running: dict[str, asyncio.Task[None]] = {}
        self._database = Transition(log, "scheduler.database_unavailable",
                                    "scheduler.database_recovered")
        self._stop_began: float | None = None
        self._scheduler = AsyncIOScheduler(job_defaults={
            "coalesce": True,  # after a pause, run once, not once per missed tick
            "max_instances": 1,
            "misfire_grace_time": None,
        })

    @property
    def schedule(self) -> dict[str, float | None]:
        """Job name → interval in seconds, or None for a disabled job."""
        return schedule_of(self.jobs.values(), self.config)

    def start(self) -> None:
        """Add every enabled job and start ticking."""
        for job in self.jobs.values():
            conf = self.config.get(job.name) or JobSettings()
            interval = self.schedule[job.name]
            if interval is None:
                log.info("job.disabled", job=job.name)
                continue
            # First run soon after start (spread by the jitter), not one whole interval later:
            # an hourly subscription check must not wait an hour to register the webhook.
            first = dt.datetime.now(dt.UTC) + dt.timedelta(
                seconds=random.uniform(0, conf.jitter_seconds))  # noqa: S311 (not crypto)
            self._scheduler.add_job(self._tick, IntervalTrigger(
                seconds=interval, jitter=conf.jitter_seconds or None), next_run_time=first,
                args=[job], id=job.name, name=job.name, replace_existing=True)
        if not self._scheduler.running:
            self._scheduler.start()

    async def run(self) -> None:
        """Tick until cancelled (a supervised task): start, then check that APScheduler keeps
        running (a schedule that stopped without being asked is a crash, and a restart starts
        it) and record the runs that ended while the database could not record them."""
        self.start()
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self._stop_began is None and not self._scheduler.running:
                raise RuntimeError("APScheduler stopped without being asked to")
            if self.runner.unrecorded:  # runs that ended while PostgreSQL was away
                await self.runner.settle_unrecorded()

    def run_soon(self, name: str) -> None:
        """Bring a scheduled job's next run forward to now (no-op if it is not scheduled)."""
        if self._scheduler.running and self._scheduler.get_job(name) is not None:
            self._scheduler.modify_job(name, next_run_time=dt.datetime.now(dt.UTC))

    async def _tick(self, job: Job) -> None:
        # APScheduler cancels the coroutines it runs when it shuts down, so the run is a task of
        # our own: stop() can then let it finish within the deadline.
        if job.name in self._running:
            log.info("job.still_running", job=job.name)  # never overlap itself
            return
        task = asyncio.create_task(self._run(job), name=f"job:{job.name}")
        self._running[job.name] = task
        task.add_done_callback(lambda done: self._forget(job.name, done))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._running.get(name) is task:  # not a newer run of the same job
            del self._running[name]

    async def _run(self, job: Job) -> None:
        try:
            await self.runner.run(job)
            self._database.ok()
        except DatabaseUnavailable as err:
            self._database.fail(job=job.name, error=str(err))
        except SyncdError as err:  # the run's own bookkeeping failed; the next tick tries again
            log.warning("scheduler.run_error", job=job.name, error=str(err))
        except Exception:  # a bug: keep the scheduler alive, show the trace
            log.exception("scheduler.run_crashed", job=job.name)

    def begin_stop(self) -> None:
        """Stop starting new runs; the drain deadline counts from the first call."""
        if self._stop_began is not None:
            return
        self._stop_began = time.monotonic()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def stop(self, deadline: float) -> None:
        """Stop scheduling; wait until `deadline` seconds after stopping began, then cancel."""
        self.begin_stop()
        assert self._stop_began is not None
        running = set(self._running.values())
        if not running:
            return
        remaining = max(deadline - (time.monotonic() - self._stop_began), 0.0)
        log.info("scheduler.draining", jobs=len(running), seconds_left=round(remaining, 1))
        _, late = await asyncio.wait(running, timeout=max(remaining, 0.001))
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if late:
            log.warning("scheduler.cancelled_late_jobs", jobs=len(late))

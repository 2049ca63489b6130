"""Replicas' heartbeat: each process that runs jobs registers in `ops.replicas` and beats every
`heartbeat.interval_seconds` with its tasks' health; a graceful stop says so.

Every beat also closes the runs left `running` by replicas that stopped beating for
`heartbeat.abandon_after_seconds` (a kill -9, a lost host): whichever replica is alive does it,
within that window plus one interval, instead of the job's next run under its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import structlog

import syncd
from syncd.db import replicas
from syncd.db.pool import Database
from syncd.errors import DatabaseError
from syncd.settings.core import Settings
from syncd.supervisor import Supervisor
from syncd.transition import Transition

if TYPE_CHECKING:  # the type only: a one-shot command never loads prometheus_client
    from syncd.metrics import Metrics

log = structlog.get_logger(__name__)


def identity(kind: str, command: str) -> replicas.Identity:
    """This process as a replica: a fresh id, host, pid and version."""
    return replicas.Identity(uuid.uuid4(), kind, command, socket.gethostname(), os.getpid(),
                             syncd.__version__)


class Heartbeat:
    """Registers, beats, closes silent replicas' runs, and marks this replica stopped."""

    def __init__(self, db: Database, me: replicas.Identity, settings: Settings,
                 supervisor: Supervisor, metrics: Metrics | None = None) -> None:
        self.db = db
        self.me = me
        self.conf = settings.heartbeat
        self.supervisor = supervisor
        self.metrics = metrics
        self._database = Transition(log, "heartbeat.failing", "heartbeat.recovered")

    async def register(self) -> None:
        """Write this replica's row (raises DatabaseError: a process that cannot register stops)."""
        await replicas.beat(self.db, self.me, self.supervisor.snapshot(),
                            self.conf.interval_seconds)
        log.info("replica.registered", replica=str(self.me.id), kind=self.me.kind,
                 command=self.me.command)

    async def run(self) -> None:
        """Beat and close abandoned runs every interval, until cancelled (a supervised task)."""
        while True:
            try:
                await self.beat_once()
                self._database.ok()
            except DatabaseError as err:  # the database's trouble, not the task's: keep beating
                self._database.fail(error=str(err))
            await asyncio.sleep(self.conf.interval_seconds)

    async def beat_once(self) -> list[replicas.AbandonedRun]:
        """One beat with the tasks' health, then close the runs of silent replicas."""
        await replicas.beat(self.db, self.me, self.supervisor.snapshot(),
                            self.conf.interval_seconds)
        closed = await replicas.abandon_silent(self.db, self.conf.abandon_after_seconds)
        for run in closed:
            log.warning("run.abandoned", job=run.job, run_id=run.id, runner=run.runner,
                        reason="its replica stopped beating")
        if closed and self.metrics is not None:
            self.metrics.runs_abandoned.inc(len(closed))
        return closed

    async def stop(self) -> None:
        """Mark this replica stopped and close its own runs still running; never raises."""
        try:
            closed = await replicas.stop(self.db, self.me, self.supervisor.snapshot())
        except DatabaseError as err:  # others close our runs once we stop beating
            log.warning("replica.stop_not_recorded", error=str(err))
            return
        for run in closed:
            log.warning("run.abandoned", job=run.job, run_id=run.id,
                        reason="the replica stopped before the run finished")
        log.info("replica.stopped", replica=str(self.me.id))


@contextlib.asynccontextmanager
async def registered(db: Database, settings: Settings, *, kind: str, command: str,
                     scrub: Callable[[str], str] = lambda s: s
                     ) -> AsyncIterator[replicas.Identity]:
    """Be a replica for the block: register, beat in a supervised task, mark stopped at the end.

    For one-shot commands that run jobs (`sync --once`, `reconcile`): their runs can then be told
    apart from a dead process's, and closed by a live replica if this one is killed.
    """
    supervisor = Supervisor(scrub=scrub, restart_limit=settings.tasks.restart_limit,
                            window=settings.tasks.restart_window_seconds)
    heartbeat = Heartbeat(db, identity(kind, command), settings, supervisor)
    await heartbeat.register()
    task = supervisor.start("heartbeat", heartbeat.run)
    try:
        yield heartbeat.me
    finally:
        await task.stop()
        await heartbeat.stop()

"""Typed fronts for the replica queries (`sql/queries/replicas.sql`): register, beat, stop, list,
and closing the runs of replicas that stopped beating."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from syncd.db.pool import Database


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a replica is: fixed for the life of the process."""

    id: uuid.UUID
    kind: str  # 'daemon' (`syncd run`) or 'once' (`sync --once`, `reconcile`)
    command: str
    host: str
    pid: int
    version: str

    @property
    def runner(self) -> str:
        """host:pid, as runs record their runner."""
        return f"{self.host}:{self.pid}"


@dataclasses.dataclass(frozen=True)
class Replica:
    """A replica as the database saw it at the last beat; `state` is up, stale or stopped."""

    id: uuid.UUID
    kind: str
    command: str
    host: str
    pid: int
    version: str
    started_at: dt.datetime
    beat_at: dt.datetime
    stopped_at: dt.datetime | None
    interval_seconds: float
    tasks: dict[str, Any]
    state: str
    silent_seconds: float


@dataclasses.dataclass(frozen=True)
class AbandonedRun:
    """A run closed because the replica that ran it is gone."""

    id: int
    job: str
    runner: str | None = None


async def beat(db: Database, me: Identity, tasks: dict[str, Any], interval: float) -> None:
    """Register `me` (beating every `interval` seconds), or refresh its beat and task health
    (re-registers a row that was lost)."""
    await db.execute("replica_beat", me.id, me.kind, me.command, me.host, me.pid, me.version, tasks,
                     interval)


async def stop(db: Database, me: Identity, tasks: dict[str, Any]) -> list[AbandonedRun]:
    """Mark `me` stopped; close and return the runs it leaves running."""
    return [AbandonedRun(r["id"], r["job"]) for r in await db.fetch("replica_stop", me.id, tasks)]


async def abandon_silent(db: Database, silent_seconds: float) -> list[AbandonedRun]:
    """Fail the running runs of replicas stopped or silent for `silent_seconds`; return them."""
    rows = await db.fetch("sync_runs_abandon_silent", silent_seconds)
    return [AbandonedRun(r["id"], r["job"], r["runner"]) for r in rows]


async def recent(db: Database, stale_after: float) -> list[Replica]:
    """Replicas that beat within the last hour (but one-shot ones that ended normally), and the
    latest daemon, oldest first per kind."""
    return [Replica(**dict(row)) for row in await db.fetch("replicas_recent", stale_after)]

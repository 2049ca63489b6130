"""`syncd events replay`: put stored pushes back in the inbox to be processed again.

A replay is a re-read, not a second delivery: the inbox worker leases the event again and
re-reads from NeoLock the devices it names (the GET is the truth, the push only a hint), so a
replay is idempotent. Only finished events (processed, unparsed, failed) go back, pending, due
at once, with a fresh attempt budget; an event still pending is already the worker's and is left
alone, so replaying the same events twice processes them once. Quarantined pushes
(`ops.quarantine`) cannot be replayed: intake refused their body (not JSON PostgreSQL can
store), so there is no stored event to re-read. Events are kept 7 days (housekeeping), which is
as far back as a replay reaches.

Each replay that puts events back is one row of the action log (`events.replay`, the ids and
the statuses they had) written in the same transaction, and one log line (`events.replayed`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import structlog

from syncd.db import events
from syncd.db.actions import record_action
from syncd.db.pool import Database

log = structlog.get_logger(__name__)
REPLAYABLE = ("failed", "unparsed", "processed")


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which events a replay means: these ids, or those with a status received since a time."""

    ids: tuple[int, ...] = ()
    status: str | None = None
    since: dt.datetime | None = None
    limit: int = 1000

    def describe(self) -> dict[str, Any]:
        """The selection as the action log keeps it."""
        if self.ids:
            return {"asked": list(self.ids)}
        return {"status": self.status, "limit": self.limit,
                "since": self.since.isoformat() if self.since else None}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a replay of a selection would do: the events it puts back, and those it leaves."""

    ids: list[int]
    pending: list[int]  # already pending: the worker has them
    unknown: list[int]  # no such event (never stored, or pruned after 7 days)


async def plan(db: Database, selection: Selection) -> Plan:
    """The events `selection` would put back, and the ids it names that it would leave alone."""
    if not selection.ids:
        if selection.status not in REPLAYABLE:
            raise ValueError(f"replay needs ids or a status among {', '.join(REPLAYABLE)}")
        return Plan(await events.select(db, selection.status, selection.since, selection.limit),
                    [], [])
    found = await events.states(db, selection.ids)
    asked = list(dict.fromkeys(selection.ids))
    return Plan([i for i in asked if found.get(i) not in (None, "pending")],
                [i for i in asked if found.get(i) == "pending"],
                [i for i in asked if i not in found])


@dataclasses.dataclass(frozen=True)
class Replayed:
    """What a replay did: each event put back with the status it had; the action log row."""

    replayed: dict[int, str]
    seq: int | None  # None when nothing was put back (nothing is logged then)

    def by_status(self) -> dict[str, int]:
        """How many of the replayed events had each status."""
        return dict(sorted(collections.Counter(self.replayed.values()).items()))


async def replay(db: Database, selection: Selection, ids: Sequence[int], *,
                 actor: str) -> Replayed:
    """Put the finished events among `ids` back in the inbox and append the action log row
    that says so, in one transaction; log the count."""
    async with db.transaction() as conn:
        replayed = await events.replay(conn, ids)
        if not replayed:
            return Replayed({}, None)
        result = Replayed(replayed, None)
        seq = await record_action(conn, actor=actor, action="events.replay", subject="inbox",
                                  outcome="ok", detail={
                                      **selection.describe(), "replayed": len(replayed),
                                      "by_status": result.by_status(), "ids": sorted(replayed)})
    log.info("events.replayed", count=len(replayed), by_status=result.by_status(), actor=actor,
             seq=seq)
    return Replayed(replayed, seq)

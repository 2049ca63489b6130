"""Typed fronts for what operators read and do with stored pushes (`sql/queries/inbox.sql`):
list and show events and quarantined pushes, and put finished events back in the inbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from syncd.db.pool import Connection, Database
from syncd.db.queries import get as sql

STATUSES = ("pending", "processed", "unparsed", "failed")


@dataclasses.dataclass(frozen=True)
class Event:
    """One stored push as an operator sees it (the body only when asked for one event)."""

    id: int
    source: str
    received_at: dt.datetime
    event_type: str | None
    subject: str | None
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    processed_at: dt.datetime | None
    error: str | None
    replays: int
    replayed_at: dt.datetime | None
    dedupe_key: str | None = None
    body: str | None = None  # pretty-printed JSON


@dataclasses.dataclass(frozen=True)
class Quarantined:
    """A push intake refused (not JSON PostgreSQL can store), kept raw."""

    id: int
    source: str
    received_at: dt.datetime
    reason: str
    content_type: str | None
    size: int  # bytes
    body: bytes | None = None


async def list_events(db: Database, status: str | None, since: dt.datetime | None,
                      limit: int) -> list[Event]:
    """Stored pushes with `status` (None: any) received since `since`, newest first."""
    return [Event(**dict(r)) for r in await db.fetch("inbox_list", status, since, limit)]


async def get_event(db: Database, event_id: int) -> Event | None:
    """One stored push with its body, or None."""
    row = await db.fetchrow("inbox_get", event_id)
    return None if row is None else Event(**dict(row))


async def states(db: Database, ids: Sequence[int]) -> dict[int, str]:
    """The status of each of `ids` that exists."""
    return {int(r["id"]): str(r["status"]) for r in await db.fetch("inbox_states", list(ids))}


async def select(db: Database, status: str, since: dt.datetime | None, limit: int) -> list[int]:
    """Ids of the events with `status` received since `since`, oldest first, at most `limit`."""
    return [int(r["id"]) for r in await db.fetch("inbox_select", status, since, limit)]


async def replay(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    """Put the finished events among `ids` back in the inbox (pending, due now, a fresh attempt
    budget; pending ones are left alone), in the caller's transaction; {id: status it had}."""
    return {int(r["id"]): str(r["was"]) for r in await conn.fetch(sql("inbox_replay"), list(ids))}


async def list_quarantined(db: Database, since: dt.datetime | None,
                           limit: int) -> list[Quarantined]:
    """Quarantined pushes received since `since`, newest first (without their bodies)."""
    return [Quarantined(**dict(r)) for r in await db.fetch("quarantine_list", since, limit)]


async def get_quarantined(db: Database, quarantine_id: int) -> Quarantined | None:
    """One quarantined push with its raw body, or None."""
    row = await db.fetchrow("quarantine_get", quarantine_id)
    if row is None:
        return None
    body = bytes(row["body"])
    return Quarantined(row["id"], row["source"], row["received_at"], row["reason"],
                       row["content_type"], len(body), body)

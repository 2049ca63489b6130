"""Typed fronts for the alert delivery queries (`sql/queries/alerts.sql`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Connection, Database
from syncd.db.queries import get as sql

# A delivery's state: its status, but `acknowledged` for a dead one an operator acknowledged.
STATES = ("pending", "delivered", "stopped", "dead", "acknowledged")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One alert leased for delivery to one hook."""

    id: int
    hook: str
    attempts: int
    event_id: str
    type: str
    payload: dict[str, Any]
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class FanOut:
    """What one fan-out call found: (alert, hook) pairs missing, deliveries made, and the outbox
    id a next call may start after (every pair up to it was made, by this call or earlier)."""

    missing: int
    deliveries: int
    through: int


async def fan_out(db: Database, routes: Sequence[tuple[str, str]], *, after: int = 0,
                  max_age: dt.timedelta, limit: int = 500) -> FanOut:
    """Make the missing deliveries of alerts younger than `max_age`, with ids above `after`, to
    these hooks (`routes`: (hook, LIKE pattern) pairs); idempotent, whoever else fans out."""
    row = await db.fetchrow("alerts_fan_out", [h for h, _ in routes], [p for _, p in routes],
                            after, max_age, limit)
    assert row is not None  # the aggregate always answers one row
    return FanOut(int(row["missing"]), int(row["deliveries"]), int(row["through"]))


async def claim(db: Database, hooks: Sequence[str], lease: dt.timedelta,
                limit: int = 50) -> list[Delivery]:
    """Lease due deliveries to `hooks` (FOR UPDATE SKIP LOCKED: concurrent deliverers share)."""
    rows = await db.fetch("alerts_claim", lease, limit, list(hooks))
    return [Delivery(r["id"], r["hook"], r["attempts"], r["event_id"], r["type"],
                     dict(r["payload"]), r["created_at"]) for r in rows]


async def delivered(db: Database, delivery_id: int, status: int) -> None:
    """Mark a delivery done."""
    await db.execute("alerts_delivered", delivery_id, status)


async def stopped(db: Database, delivery_id: int, status: int, error: str) -> None:
    """Mark a delivery refused for good (410)."""
    await db.execute("alerts_stopped", delivery_id, status, error)


async def retry(db: Database, delivery_id: int, delay: float, status: int | None, error: str,
                max_age: dt.timedelta) -> str:
    """Schedule another attempt in `delay` s; 'dead' when that would pass `max_age`."""
    return str(await db.fetchval("alerts_retry", delivery_id, delay, status, error, max_age))


async def counts(db: Database) -> dict[tuple[str, str], int]:
    """Deliveries by (hook, state): acknowledged dead ones apart from the others."""
    return {(r["hook"], r["status"]): int(r["deliveries"]) for r in await db.fetch("alerts_counts")}


async def open_alerts(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """(opened alert's event id, payload as the case stands) of every open, unsuppressed case
    whose opened alert was queued."""
    return [(r["event_id"], dict(r["payload"])) for r in await db.fetch("alerts_open_for_resend")]


@dataclasses.dataclass(frozen=True)
class DeliveryRow:
    """One delivery with its alert, as `syncd alerts list` shows it."""

    id: int
    hook: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    finished_at: dt.datetime | None
    redeliveries: int
    requeued_at: dt.datetime | None
    acked_at: dt.datetime | None
    acked_by: str | None
    ack_reason: str | None
    event_id: str
    type: str
    subject: str | None
    created_at: dt.datetime


async def list_deliveries(db: Database, state: str | None, hook: str | None,
                          limit: int) -> list[DeliveryRow]:
    """Deliveries in `state` (None: any) to `hook` (None: any), newest first."""
    return [DeliveryRow(**dict(r)) for r in await db.fetch("alerts_list", state, hook, limit)]


async def states(db: Database, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(hook, state) of each of `ids` that exists."""
    return {int(r["id"]): (r["hook"], r["state"])
            for r in await db.fetch("alerts_states", list(ids))}


async def dead(db: Database, hook: str | None) -> list[int]:
    """Ids of the dead, unacknowledged deliveries (to `hook`; None: any), oldest first."""
    return [int(r["id"]) for r in await db.fetch("alerts_dead", hook)]


async def redeliver(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Put the dead or stopped deliveries among `ids` back in the queue with a fresh attempt
    budget (in the caller's transaction); {id: (hook, state it had)}."""
    return {int(r["id"]): (r["hook"], r["was"])
            for r in await conn.fetch(sql("alerts_redeliver"), list(ids))}


async def acknowledge(conn: Connection, ids: Sequence[int], by: str,
                      reason: str) -> dict[int, str]:
    """Acknowledge the dead, unacknowledged deliveries among `ids` (in the caller's
    transaction); {id: hook} of those acknowledged."""
    return {int(r["id"]): r["hook"]
            for r in await conn.fetch(sql("alerts_ack"), list(ids), by, reason)}

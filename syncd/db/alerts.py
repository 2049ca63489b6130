"""Typed fronts for the alert delivery queries (`sql/queries/alerts.sql`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Database


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
    """Deliveries by (hook, status)."""
    return {(r["hook"], r["status"]): int(r["deliveries"]) for r in await db.fetch("alerts_counts")}


async def open_alerts(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """(opened alert's event id, payload as the case stands) of every open, unsuppressed case
    whose opened alert was queued."""
    return [(r["event_id"], dict(r["payload"])) for r in await db.fetch("alerts_open_for_resend")]

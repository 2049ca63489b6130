"""Typed fronts for the named queries of syncd's own state (ops.*): runs, cursors, inbox, hooks.

Each function runs one query from sql/queries/ and returns plain Python values, so callers never
handle asyncpg records or remember argument order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from syncd.db.pool import Connection, Database
from syncd.db.queries import get as sql

# --- job runs -------------------------------------------------------------------------------


async def abandon_runs(db: Database, job: str) -> None:
    """Close runs of `job` left 'running' by a runner that died (call while holding its lock).

    The heartbeat closes a dead replica's runs sooner (syncd/jobs/heartbeat.py); this also covers
    runs recorded without a replica."""
    await db.execute("sync_runs_abandon", job)


async def start_run(db: Database, job: str, runner: str, replica: uuid.UUID | None = None) -> int:
    """Record that a run started (by `replica`, if the runner registered one); return its id."""
    return int(await db.fetchval("sync_run_start", job, runner, replica))


async def finish_run(db: Database, run_id: int, *, status: str, items: int, requests: int,
                     error: str | None) -> None:
    """Record how a run ended (by keyword: five values are too easy to misorder)."""
    await db.execute("sync_run_finish", run_id, status, items, requests, error)


async def settle_run(db: Database, run_id: int, error: str) -> None:
    """Fail a run whose end could not be recorded, unless something recorded it since."""
    await db.execute("sync_run_settle", run_id, error)


async def previous_status(db: Database, job: str, run_id: int) -> str | None:
    """Status of the job's latest finished run other than `run_id`."""
    value = await db.fetchval("sync_run_previous_status", job, run_id)
    return None if value is None else str(value)


async def latest_runs(db: Database) -> dict[str, dict[str, Any]]:
    """The latest run of every job, by job name, with its last success time."""
    return {row["job"]: dict(row) for row in await db.fetch("sync_runs_latest")}


async def failed_in_a_row(db: Database) -> dict[str, int]:
    """Job name → how many of its runs since its latest successful one failed."""
    return {row["job"]: int(row["failed"]) for row in await db.fetch("sync_runs_failed_in_a_row")}


async def prune(db: Database, query: str, days: float) -> int:
    """Run one of the *_prune queries; return how many rows it deleted."""
    status = await db.execute(query, days)
    return int(status.split()[-1])


async def migrations_applied(db: Database) -> int:
    """How many migrations the database has applied."""
    return int(await db.fetchval("migrations_applied_count"))


# --- cursors --------------------------------------------------------------------------------


async def get_cursor(db: Database, name: str) -> dict[str, Any]:
    """A named cursor's value ({} when there is none)."""
    value = await db.fetchval("cursor_get", name)
    return value if isinstance(value, dict) else {}


async def set_cursor(conn: Connection, name: str, value: dict[str, Any]) -> None:
    """Store a cursor, inside the transaction that writes the data it describes."""
    await conn.execute(sql("cursor_set"), name, value)


# --- inbox and quarantine -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LeasedEvent:
    """A pushed event leased to this worker."""

    id: int
    source: str
    body: str  # the stored jsonb as text: decoding is the worker's, event by event
    attempts: int


async def lease_events(db: Database, limit: int, lease_seconds: float,
                       max_attempts: int) -> list[LeasedEvent]:
    """Lease up to `limit` due events with attempts left (FOR UPDATE SKIP LOCKED)."""
    rows = await db.fetch("inbox_claim", limit, lease_seconds, max_attempts)
    return [LeasedEvent(r["id"], r["source"], r["body"], r["attempts"]) for r in rows]


async def give_up_events(db: Database, max_attempts: int) -> list[int]:
    """Mark failed the due events that used all their attempts; return their ids."""
    return [int(r["id"]) for r in await db.fetch("inbox_give_up", max_attempts)]


async def settle_event(db: Database, event: LeasedEvent, *, status: str, error: str | None,
                       subject: str | None = None, event_type: str | None = None) -> bool:
    """Record a leased event's outcome (processed, unparsed or failed); False, and nothing
    written, when the lease lapsed (another worker may hold the event now)."""
    return await db.fetchval("inbox_mark", event.id, status, error, subject, event_type,
                             event.attempts) is not None


async def retry_event_later(db: Database, event: LeasedEvent, delay: float, error: str) -> bool:
    """Make a leased event due again after `delay` seconds; False, and nothing written, when
    the lease lapsed."""
    return await db.fetchval("inbox_retry_later", event.id, delay, error,
                             event.attempts) is not None


async def inbox_counts(db: Database) -> dict[str, int]:
    """Events by status."""
    return {row["status"]: int(row["n"]) for row in await db.fetch("inbox_counts")}


async def quarantine(db: Database, source: str, *, reason: str, content_type: str | None,
                     body: bytes) -> None:
    """Keep a refused push raw, for inspection."""
    await db.execute("quarantine_insert", source, reason, content_type, body)


# --- webhook subscriptions ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Subscription:
    """What syncd registered with a vendor (the URL's secret only as a SHA-256)."""

    provider: str
    public_url: str
    secret_sha256: str
    secret_source: str
    registered_at: dt.datetime
    checked_at: dt.datetime
    status: str
    last_error: str | None


async def get_subscription(db: Database, provider: str) -> Subscription | None:
    """The stored subscription state, if any."""
    row = await db.fetchrow("subscription_get", provider)
    return None if row is None else Subscription(**dict(row))


async def save_subscription(db: Database, provider: str, *, public_url: str,
                            secret_sha256: str, secret_source: str) -> None:
    """Record a successful (re-)registration."""
    await db.execute("subscription_save", provider, public_url, secret_sha256, secret_source,
                     "registered", None)


async def subscription_failed(db: Database, provider: str, public_url: str, error: str) -> None:
    """Record a failed registration, keeping the secret already registered."""
    await db.execute("subscription_failed", provider, public_url, error)


async def subscription_checked(db: Database, provider: str) -> None:
    """Note that the subscription was found current."""
    await db.execute("subscription_touch", provider)


async def subscription_deleted(db: Database, provider: str) -> None:
    """Record that the subscription was deleted at the vendor."""
    await db.execute("subscription_deleted", provider)

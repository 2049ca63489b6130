"""Typed fronts for the named queries about phones (vendor.phones and what is known of them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from syncd.db.pool import Connection, Database
from syncd.db.queries import get as sql


async def mark_gone(conn: Connection, provider: str, device_uids: Sequence[str],
                    at: dt.datetime) -> int:
    """Mark devices the vendor answered 404 for as gone; return how many changed."""
    status = await conn.execute(sql("phones_mark_gone"), provider, list(device_uids), at)
    return int(status.split()[-1])


async def known_neolock_devices(db: Database) -> int:
    """How many NeoLock devices are known (stored, uploaded or under contract)."""
    return int(await db.fetchval("neolock_known_devices_count"))


async def merge_uploads(conn: Connection, provider: str, pages: Sequence[tuple[str, str]],
                        seen_at: dt.datetime, seen_granularity: dt.timedelta
                        ) -> tuple[int, int]:
    """Merge upload pages, each (JSON body text, where its rows sit), into vendor.phone_uploads.

    Run inside the caller's transaction (with the cursor). Returns the rows (inserted, updated).
    """
    row = await conn.fetchrow(sql("uploads_merge"), provider, [body for body, _ in pages],
                              [rows_at for _, rows_at in pages], seen_at, seen_granularity)
    assert row is not None  # an aggregate always answers one row
    return int(row["inserted"]), int(row["updated"])


async def adopt_listed_neolock(db: Database, at: dt.datetime, after: str, limit: int) -> int:
    """Give the next `limit` listed devices after `after` that no GET has described yet their
    listed state in vendor.phones; rows written."""
    return int(await db.fetchval("neolock_phones_adopt_listed", at, after, limit))


async def detail_read(conn: Connection, provider: str, device_uids: Sequence[str],
                      at: dt.datetime) -> None:
    """Record that a GET of `device_uids` answered at `at` (in the transaction storing them)."""
    await conn.execute(sql("phones_detail_read"), provider, list(device_uids), at)


async def neolock_devices_scan(db: Database, after: str, limit: int, now: dt.datetime,
                               detail_max_age: dt.timedelta,
                               pushed: Sequence[tuple[str, dt.datetime]], *,
                               read_unlisted: bool = True) -> list[tuple[str, bool]]:
    """The next `limit` known NeoLock devices after `after`, each with whether a GET is due.

    `pushed`: (device, when) of pushes whose refresh failed (see `failed_push_subjects`).
    `read_unlisted`: whether a device neither stored nor listed (known from a contract) is due.
    """
    rows = await db.fetch("neolock_devices_scan", after, limit, now, detail_max_age,
                          [uid for uid, _ in pushed], [at for _, at in pushed], read_unlisted)
    return [(r["device_uid"], bool(r["due"])) for r in rows]


async def failed_push_subjects(db: Database, since: dt.datetime
                               ) -> list[tuple[str, dt.datetime]]:
    """NeoLock devices named by pushes since `since` whose processing failed, with the latest."""
    rows = await db.fetch("neolock_failed_push_subjects", since)
    return [(r["subject"], r["received_at"]) for r in rows]

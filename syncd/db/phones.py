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


async def known_neolock_devices_after(db: Database, after: str, limit: int) -> list[str]:
    """The next `limit` known NeoLock device ids after `after`, in order (keyset paging)."""
    return [r["device_uid"] for r in await db.fetch("neolock_known_devices_after", after, limit)]


async def known_neolock_devices(db: Database) -> int:
    """How many NeoLock devices are known (stored, uploaded or under contract)."""
    return int(await db.fetchval("neolock_known_devices_count"))


async def merge_uploads(conn: Connection, provider: str, pages: Sequence[tuple[str, str]],
                        seen_at: dt.datetime, seen_granularity: dt.timedelta) -> tuple[int, int]:
    """Merge upload pages, each (JSON body text, where its rows sit), into vendor.phone_uploads.

    Run inside the caller's transaction (with the cursor). Returns (inserted, updated).
    """
    row = await conn.fetchrow(sql("uploads_merge"), provider, [body for body, _ in pages],
                              [rows_at for _, rows_at in pages], seen_at, seen_granularity)
    assert row is not None  # an aggregate always answers one row
    return int(row["inserted"]), int(row["updated"])

"""`k3-audit`: each lock's audit trail, newest first, down to what is stored plus a bounded lookback.

Audit reaches the server only when a lock syncs (Bluetooth or a gateway), so an entry can arrive
after newer ones were read, with a higher AuditEntryID and an older DateEntered. Each run reads a
lock's pages in descending order until a page holds an entry at or below the stored high-water
id, then keeps reading back up to `audit_lookback_pages` pages while entries are younger than
`audit_lookback_hours`, to catch such late arrivals. A lock seen for the first time is read back
`audit_backfill_days`.

Every page is written together with the lock's cursor in one transaction. The cursor keeps the
high-water id of the last completed walk and, while a walk is under way, the next page to read:
after a crash the walk resumes there (pages only ever move down as entries arrive, so nothing is
skipped), and the high-water id moves only when a walk completes, so nothing is left behind.
Entries are keyed by (lock, AuditEntryID): never a duplicate. EntryType is kept verbatim.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

import structlog

from syncd.db import codelocks as queries
from syncd.db import ops
from syncd.db.codelocks import AuditRow
from syncd.sync.base import RunContext
from syncd.sync.codelocks.jobs import K3Job, as_utc
from syncd.vendors.codelocks import AuditEntry

log = structlog.get_logger(__name__)
MAX_PAGES_PER_RUN = 50  # per lock; a longer walk resumes next run from its cursor


def cursor_name(lock_id: str) -> str:
    """The ops.cursors name of a lock's audit cursor."""
    return f"k3-audit:{lock_id}"


def audit_row(entry: AuditEntry, lock_id: str) -> AuditRow:
    """An audit entry as a row to store (time read as UTC)."""
    entered = as_utc(entry.date_entered)
    assert entered is not None
    return AuditRow(lock_id, entry.audit_entry_id, entered, entry.entry_type, entry.entry_text,
                    entry.model_dump(mode="json", by_alias=True))


class K3AuditJob(K3Job):
    """`k3-audit`: new and late audit entries of every lock, page and cursor committed together."""

    name = "k3-audit"

    async def work(self, ctx: RunContext) -> None:
        """Walk each lock's audit; record how late the new entries reached us."""
        locks = await queries.present_locks(self.db)
        lateness: list[float] = []
        for done, (lock_id, ref) in enumerate(sorted(locks.items()), start=1):
            key = self.k3.keys.get(ref)
            if key is None:
                continue
            new = await self._walk(ctx, key, lock_id)
            lateness.extend(new)
            ctx.progress(done, len(locks))
        if lateness:
            log.info("k3.audit", new=len(lateness),
                     lateness_p50_s=round(statistics.median(lateness)),
                     lateness_max_s=round(max(lateness)))

    async def _walk(self, ctx: RunContext, key: str, lock_id: str) -> list[float]:
        """Read one lock's pages; returns the lateness (seconds) of each new entry."""
        settings = self.k3.settings
        cursor = await ops.get_cursor(self.db, cursor_name(lock_id))
        high: int | None = cursor.get("high")
        walk: dict[str, Any] = cursor.get("walk") or {}
        page = int(walk.get("page", 1))
        top = int(walk.get("top", high or 0))
        extra = int(walk.get("extra", 0))
        reached = bool(walk.get("reached", False))
        now = self.k3.clock()
        backfill = now - dt.timedelta(days=settings.audit_backfill_days)
        lookback = now - dt.timedelta(hours=settings.audit_lookback_hours)
        per_page = settings.audit_page_size
        lateness: list[float] = []
        for _ in range(MAX_PAGES_PER_RUN):
            entries = await self.client.audit(key, lock_id, page, per_page, descending=True)
            rows = [audit_row(e, lock_id) for e in entries]
            if rows:
                top = max(top, max(r.audit_entry_id for r in rows))
            known_here = high is not None and any(r.audit_entry_id <= high for r in rows)
            oldest = min((r.entered_at for r in rows), default=None)
            # Past known territory, each further page is part of the bounded lookback.
            if reached:
                extra += 1
            reached = reached or known_here
            # Never stop short of the stored high-water id (that would leave a gap), except on
            # a first walk, which reads back `audit_backfill_days` only.
            finished = (len(rows) < per_page or oldest is None
                        or (high is None and oldest < backfill)
                        or (reached and (extra >= settings.audit_lookback_pages
                                         or oldest < lookback)))
            # A lock with no entry yet keeps no high-water id: its first entries are a backfill.
            cursor_value = {"high": (top or None) if finished else high,
                            "walk": None if finished else {"page": page + 1, "top": top,
                                                           "extra": extra, "reached": reached}}
            seen_at = self.k3.clock()
            async with self.db.transaction() as conn:
                new = await queries.insert_audit(conn, rows, seen_at)
                await ops.set_cursor(conn, cursor_name(lock_id), cursor_value)
            ctx.add_items(len(new))
            lateness.extend((seen_at - entered).total_seconds() for _, entered in new)
            if finished:
                break
            page += 1
        return lateness

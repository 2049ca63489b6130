"""The inbox worker: leases pushed events, re-reads the devices they name, marks them processed.

Events are leased with `FOR UPDATE SKIP LOCKED` (several replicas share the inbox) and no
transaction is held open during vendor calls: a lease that expires (a worker died) makes the
event due again. Vendor trouble retries the event later with backoff; it is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from syncd.db import ops
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.inbox.parse import ParsedEvent, parse_event
from syncd.metrics import Metrics
from syncd.sync import neolock
from syncd.vendors.neolock.client import NeoLockClient

log = structlog.get_logger(__name__)

LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 12


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt: 2, 4, 8 … capped at 10 minutes."""
    return float(min(2 ** attempts, 600))


class InboxWorker:
    """Processes due NeoLock events in batches."""

    def __init__(self, db: Database, client: NeoLockClient, metrics: Metrics | None = None, *,
                 batch: int = 100, concurrency: int = 8, poll_interval: float = 1.0,
                 scrub: Callable[[str], str] = lambda s: s,
                 wakeup: asyncio.Event | None = None) -> None:
        self.db = db
        self.client = client
        self.metrics = metrics
        self.batch = batch
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.scrub = scrub
        self.wakeup = wakeup or asyncio.Event()  # set by intake when it stores an event
        self._db_down = False

    async def run_forever(self) -> None:
        """Process events as they arrive (woken by intake) or every poll_interval."""
        while True:
            try:
                handled = await self.process_due()
                if self._db_down:
                    self._db_down = False
                    log.info("inbox.database_recovered")
            except DatabaseUnavailable as err:
                handled = 0
                if not self._db_down:
                    self._db_down = True
                    log.warning("inbox.database_unavailable", error=str(err))
            if handled:
                continue  # more may be due
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_interval)

    async def process_due(self) -> int:
        """Lease and handle one batch of due events; return how many were handled."""
        rows = await ops.lease_events(self.db, self.batch, LEASE_SECONDS)
        if not rows:
            return 0
        parsed = {r.id: parse_event(r.body) for r in rows}  # jsonb arrives decoded
        uids = list(dict.fromkeys(u for p in parsed.values() for u in p.device_uids))
        found = await neolock.refresh(self.client, uids, self.concurrency)
        await neolock.store(self.db, found)
        for row in rows:
            await self._settle(row, parsed[row.id], found.failed)
        return len(rows)

    async def _settle(self, row: ops.LeasedEvent, event: ParsedEvent,
                      failed: dict[str, str]) -> None:
        event_id, subject, event_type = row.id, event.subject, event.event_type
        if not event.parsed:
            await ops.settle_event(self.db, event_id, "unparsed", "no device id found in the push",
                                   None, event_type)
            self._count("unparsed")
            log.info("inbox.unparsed", event_id=event_id)
            return
        errors = [failed[u] for u in event.device_uids if u in failed]
        if not errors:
            await ops.settle_event(self.db, event_id, "processed", None, subject, event_type)
            self._count("processed")
            return
        error = self.scrub(errors[0])[:500]
        if row.attempts >= MAX_ATTEMPTS:
            await ops.settle_event(self.db, event_id, "failed", error, subject, event_type)
            self._count("failed")
            log.warning("inbox.gave_up", event_id=event_id, attempts=row.attempts, error=error)
        else:
            await ops.retry_event_later(self.db, event_id, retry_delay(row.attempts), error)
            self._count("retried")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.events.labels(source="neolock", outcome=outcome).inc()


async def run_worker(worker: InboxWorker) -> None:
    """Run the worker until cancelled, logging (not dying on) unexpected errors."""
    while True:
        try:
            await worker.run_forever()
        except asyncio.CancelledError:
            raise
        except SyncdError as err:
            log.warning("inbox.error", error=worker.scrub(str(err)))
        except Exception:
            log.exception("inbox.crashed")
        await asyncio.sleep(worker.poll_interval)

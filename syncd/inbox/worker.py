"""The inbox worker: leases pushed events, re-reads the devices they name, marks them processed.

Events are leased with `FOR UPDATE SKIP LOCKED` (several replicas share the inbox) and no
transaction is held open during vendor calls: a lease that expires (a worker died, or took
longer than the lease) makes the event due again. An outcome is written only while the worker
still holds the lease (same attempt, not run out); a lapsed lease's outcome is dropped, logged
(`inbox.lease_lost`) and counted, so it never overwrites what the next holder records. Vendor
trouble retries the event later with backoff; it is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from syncd.backoff import INBOX_RETRY
from syncd.db import ops
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable
from syncd.inbox.parse import loads_exact
from syncd.metrics import Metrics
from syncd.sync import refresh
from syncd.transition import Transition
from syncd.vendors import usage
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.events import ParsedEvent, parse_event
from syncd.vendors.usage import Usage

log = structlog.get_logger(__name__)

LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 12


class InboxWorker:
    """Processes due NeoLock events in batches."""

    def __init__(self, db: Database, client: NeoLockClient, metrics: Metrics | None = None, *,
                 batch: int = 100, concurrency: int = 8, poll_interval: float = 1.0,
                 scrub: Callable[[str], str] = lambda s: s,
                 wakeup: asyncio.Event | None = None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.db = db
        self.client = client
        self.metrics = metrics
        self.batch = batch
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.scrub = scrub
        self.wakeup = wakeup or asyncio.Event()  # set by intake when it stores an event
        self._database = Transition(log, "inbox.database_unavailable", "inbox.database_recovered")
        self.usage = Usage()  # vendor requests of every batch so far, by route

    async def run_forever(self) -> None:
        """Process events as they arrive (woken by intake) or every poll_interval."""
        while True:
            try:
                handled = await self.process_due()
                self._database.ok()
            except DatabaseUnavailable as err:
                handled = 0
                self._database.fail(error=str(err))
            if handled:
                continue  # more may be due
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_interval)

    async def process_due(self) -> int:
        """Lease and handle one batch of due events; return how many were handled.

        Every event settles on its own: a body that cannot be decoded fails alone at once, and an
        unforeseen error while refreshing a batch is retried event by event, so one poison event
        never holds back the others. Events out of attempts are failed before the lease.
        """
        for event_id in await ops.give_up_events(self.db, MAX_ATTEMPTS):
            self._count("failed")
            log.warning("inbox.gave_up", event_id=event_id, attempts=MAX_ATTEMPTS)
        rows = await ops.lease_events(self.db, self.batch, self.lease_seconds, MAX_ATTEMPTS)
        if not rows:
            return 0
        with usage.counting(Usage()) as batch:  # the batch is the unit of work
            try:
                await self._process(rows)
            finally:
                self.usage.requests += batch.requests
                self.usage.by_route.update(batch.by_route)
        return len(rows)

    async def _process(self, rows: list[ops.LeasedEvent]) -> None:
        readable: list[tuple[ops.LeasedEvent, ParsedEvent]] = []
        for row in rows:
            try:
                readable.append((row, parse_event(loads_exact(row.body))))
            except (ValueError, RecursionError) as err:
                await self._fail(row, f"unreadable body: {type(err).__name__}: {err}"[:500])
        await self._handle(readable)

    async def _handle(self, events: list[tuple[ops.LeasedEvent, ParsedEvent]]) -> None:
        """Refresh the devices the events name, then settle each; isolate unforeseen errors."""
        if not events:
            return
        try:
            uids = list(dict.fromkeys(u for _, p in events for u in p.device_uids))
            found = await refresh.refresh(self.client, uids, self.concurrency)
            await refresh.store(self.db, found)
            for row, event in events:
                await self._settle(row, event, found.failed)
        except (DatabaseUnavailable, asyncio.CancelledError):
            raise  # the leases expire and the events come back: nothing to settle
        except Exception as err:
            if len(events) > 1:  # find the culprit: one event at a time
                for one in events:
                    await self._handle([one])
                return
            row, _ = events[0]
            log.warning("inbox.event_error", event_id=row.id, error=self.scrub(repr(err))[:200])
            await self._retry_or_fail(row, f"{type(err).__name__}: {err}")

    async def _settle(self, row: ops.LeasedEvent, event: ParsedEvent,
                      failed: dict[str, str]) -> None:
        event_id, subject, event_type = row.id, event.subject, event.event_type
        if not event.parsed:
            if self._held(row, "unparsed", await ops.settle_event(
                    self.db, row, status="unparsed", error="no device id found in the push",
                    event_type=event_type)):
                log.info("inbox.unparsed", event_id=event_id)
            return
        errors = [failed[u] for u in event.device_uids if u in failed]
        if not errors:
            self._held(row, "processed", await ops.settle_event(
                self.db, row, status="processed", error=None, subject=subject,
                event_type=event_type))
            return
        await self._retry_or_fail(row, errors[0], subject, event_type)

    async def _retry_or_fail(self, row: ops.LeasedEvent, error: str, subject: str | None = None,
                             event_type: str | None = None) -> None:
        """Retry later with backoff, or fail the event once it has used its attempts."""
        error = self.scrub(error)[:500]
        if row.attempts >= MAX_ATTEMPTS:
            if self._held(row, "failed", await ops.settle_event(
                    self.db, row, status="failed", error=error, subject=subject,
                    event_type=event_type)):
                log.warning("inbox.gave_up", event_id=row.id, attempts=row.attempts, error=error)
        else:
            self._held(row, "retried", await ops.retry_event_later(
                self.db, row, INBOX_RETRY.delay(row.attempts - 1), error))

    async def _fail(self, row: ops.LeasedEvent, error: str) -> None:
        """Fail an event no retry can help (its body cannot be read)."""
        if self._held(row, "failed", await ops.settle_event(
                self.db, row, status="failed", error=self.scrub(error)[:500])):
            log.warning("inbox.poison", event_id=row.id, error=self.scrub(error)[:200])

    def _held(self, row: ops.LeasedEvent, outcome: str, written: bool) -> bool:
        """Count the outcome if it was written; else say that the lease had lapsed (the outcome
        was dropped: the event is due again, or another worker holds it now)."""
        if written:
            self._count(outcome)
            return True
        self._count("lease_lost")
        log.warning("inbox.lease_lost", event_id=row.id, attempt=row.attempts,
                    dropped=outcome, lease_seconds=self.lease_seconds)
        return False

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.event("neolock", outcome)


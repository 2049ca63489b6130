"""Durable intake with group commit: concurrent pushes share one INSERT and one COMMIT.

Each `submit()` waits until its row is committed (or found to be a duplicate) before returning, so
the HTTP handler acknowledges only durable events. While one batch is being committed, the next
one gathers: under load, batches grow by themselves and no artificial delay is ever added.
"""

from __future__ import annotations

import asyncio
import dataclasses

import structlog

from syncd.db.pool import Database
from syncd.errors import DatabaseError, DatabaseUnavailable, DataRejected

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class InboxItem:
    """One event to persist. `body` is the exact JSON text received."""

    source: str
    dedupe_key: str
    event_type: str | None
    subject: str | None
    body: str


@dataclasses.dataclass
class _Waiting:
    item: InboxItem
    done: asyncio.Future[bool]


class GroupCommitter:
    """Batches concurrent inserts into `ops.inbox`; up to `max_inflight` batches commit at once."""

    def __init__(self, db: Database, *, max_batch: int = 512, max_inflight: int = 2) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._queue: list[_Waiting] = []
        self._active = 0  # flushers running; changed only where no await intervenes
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.rows = 0

    async def submit(self, item: InboxItem) -> bool:
        """Persist `item`; return True if new, False if a duplicate. Raises DatabaseError."""
        waiting = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        # While a batch commits, the next one starts at once (up to max_inflight) instead of
        # after it: a push then waits for about one commit, not up to two.
        if self._active < self.max_inflight:
            self._active += 1
            task = asyncio.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await waiting.done

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                await self._write(batch)
        except BaseException:  # cancelled: nobody may be left waiting for a commit
            batch, self._queue = self._queue, []
            self._fail(batch, DatabaseError("intake interrupted before the commit"))
            raise
        finally:
            # No await between the empty-queue check and this line, so a submit() can never
            # find a flusher that is about to leave without taking its item.
            self._active -= 1

    async def _write(self, batch: list[_Waiting]) -> None:
        """Commit `batch`; a value the database refuses fails only its own push, not the batch."""
        items = [w.item for w in batch]
        try:
            rows = await self.db.fetch(
                "inbox_insert_batch",
                [i.source for i in items], [i.dedupe_key for i in items],
                [i.event_type for i in items], [i.subject for i in items],
                [i.body for i in items])
        except DatabaseUnavailable as err:
            self._fail(batch, err)
            return
        except DatabaseError as err:
            if len(batch) > 1:  # find the culprit: one statement (and commit) per push
                for waiting in batch:
                    await self._write([waiting])
            else:
                self._fail(batch, DataRejected(str(err)))
            return
        except BaseException:
            self._fail(batch, DatabaseError("intake interrupted before the commit"))
            raise
        inserted = {(r["source"], r["dedupe_key"]) for r in rows}
        self.batches += 1
        self.rows += len(inserted)
        for w in batch:
            if not w.done.done():
                key = (w.item.source, w.item.dedupe_key)
                w.done.set_result(key in inserted)
                inserted.discard(key)  # a duplicate inside the same batch counts once

    @staticmethod
    def _fail(batch: list[_Waiting], err: BaseException) -> None:
        for w in batch:
            if not w.done.done():
                w.done.set_exception(err)

    async def close(self) -> None:
        """Wait for batches being written."""
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

"""Group commit for any hot-path write: concurrent callers share one statement and one COMMIT.

`submit()` returns once its item's batch is committed. Up to `max_inflight` batches are written
at once (on separate connections, so PostgreSQL can share one WAL flush among their commits);
while they are, the next batch gathers, so batches grow with load and no delay is ever added.
Used by the app registry's upserts and by the inbox's `GroupCommitter`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from syncd.errors import DatabaseError, DatabaseUnavailable, DataRejected

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(slots=True)
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """Batches `submit()`ed items into calls of `write(items) -> results` (same order, same length).

    A batch the database refuses is retried item by item, so a bad value fails only its own
    caller (DataRejected); an unreachable database fails the whole batch (DatabaseUnavailable).
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = 512,
                 max_inflight: int = 2) -> None:
        self.write = write
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._queue: list[_Waiting[T, R]] = []
        self._active = 0  # flushers running; changed only where no await intervenes
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0

    async def submit(self, item: T) -> R:
        """Write `item` in the next batch and return its result. Raises DatabaseError."""
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
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
            self._fail(batch, DatabaseError("write interrupted before the commit"))
            raise
        finally:
            # No await between the empty-queue check and this line, so a submit() can never
            # find a flusher that is about to leave without taking its item.
            self._active -= 1

    async def _write(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            results = await self.write([w.item for w in batch])
        except DatabaseUnavailable as err:
            self._fail(batch, err)
            return
        except DatabaseError as err:
            if len(batch) > 1:  # find the culprit: one statement (and commit) per item
                for waiting in batch:
                    await self._write([waiting])
            else:
                self._fail(batch, DataRejected(str(err)))
            return
        except BaseException:
            self._fail(batch, DatabaseError("write interrupted before the commit"))
            raise
        self.batches += 1
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.done.done():  # the caller may have stopped waiting (timeout)
                waiting.done.set_result(result)

    @staticmethod
    def _fail(batch: list[_Waiting[T, R]], err: BaseException) -> None:
        for waiting in batch:
            if not waiting.done.done():
                waiting.done.set_exception(err)

    async def close(self) -> None:
        """Wait for batches being written."""
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

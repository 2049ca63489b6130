"""Group commit for any hot-path write: concurrent callers share one statement and one COMMIT.

The future `submit()` hands back resolves once its item's batch is committed. Up to
`max_inflight` batches are written at once (on separate connections, so PostgreSQL can share
one WAL flush among their commits); while they are, the next batch gathers, so batches grow
with load and no delay is ever added.
Used by the app registry's upserts and by the inbox's `GroupCommitter`.

With a `timeout`, a caller whose item is not committed within it gets TimeoutError (its item is
still written; only the wait ends). One timer serves every caller, not one each: the waits are
watched oldest first, and the timer sleeps until the oldest unanswered one's deadline.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from syncd.errors import DatabaseError, DatabaseUnavailable, DataRejected

T = TypeVar("T")
R = TypeVar("R")


class _Watched(Generic[R]):
    """A caller waiting with a deadline (`timeout`): its future and when it stops waiting."""

    __slots__ = ("deadline", "done")

    def __init__(self, done: asyncio.Future[R], deadline: float) -> None:
        self.done = done
        self.deadline = deadline  # loop.time() by which the caller stops waiting


class GroupCommit(Generic[T, R]):
    """Batches `submit()`ed items into calls of `write(items) -> results` (same order, same length).

    A batch the database refuses is retried item by item, so a bad value fails only its own
    caller (DataRejected); an unreachable database fails the whole batch (DatabaseUnavailable).
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = 512,
                 max_inflight: int = 2, timeout: float | None = None) -> None:
        self.write = write
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.timeout = timeout
        self._queue: list[tuple[T, asyncio.Future[R]]] = []  # (item, its caller's future)
        self._active = 0  # flushers running; changed only where no await intervenes
        self._flushers: set[asyncio.Task[None]] = set()
        self._watched: collections.deque[_Watched[R]] = collections.deque()  # oldest first
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item` for the next batch; await the returned future for its result. It raises
        DatabaseError, and TimeoutError when a `timeout` passes first.

        A plain function handing back the future, not a coroutine: on the intake and registry
        routes that saves a coroutine and a frame every request.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        if self.timeout is not None:
            self._watch(done, loop)
        self._queue.append((item, done))
        if self._active < self.max_inflight:
            self._active += 1
            task = loop.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return done

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

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self.write([item for item, _ in batch])
        except DatabaseUnavailable as err:
            self._fail(batch, err)
            return
        except DatabaseError as err:
            if len(batch) > 1:  # find the culprit: one statement (and commit) per item
                for one in batch:
                    await self._write([one])
            else:
                self._fail(batch, DataRejected(str(err)))
            return
        except BaseException:
            self._fail(batch, DatabaseError("write interrupted before the commit"))
            raise
        self.batches += 1
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():  # the caller may have stopped waiting (timeout)
                done.set_result(result)

    def _watch(self, done: asyncio.Future[R], loop: asyncio.AbstractEventLoop) -> None:
        # Instead of a timer per caller (asyncio.timeout: scheduled and cancelled on every
        # request), one timer for the oldest wait; answered waits are dropped as new ones come.
        assert self.timeout is not None
        watched = self._watched
        while watched and watched[0].done.done():
            watched.popleft()
        watched.append(_Watched(done, loop.time() + self.timeout))
        if self._timer is None:
            self._timer = loop.call_at(watched[0].deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the waits past their deadline; sleep until the next one's."""
        self._timer = None
        now, watched = loop.time(), self._watched
        while watched:
            waiting = watched[0]
            if not waiting.done.done():
                if waiting.deadline > now:
                    self._timer = loop.call_at(waiting.deadline, self._expire, loop)
                    return
                waiting.done.set_exception(TimeoutError(
                    f"not committed within {self.timeout:g}s"))
            watched.popleft()

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[R]]], err: BaseException) -> None:
        for _, done in batch:
            if not done.done():
                done.set_exception(err)

    async def close(self) -> None:
        """Wait for batches being written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

"""NeoLock push delivery: JSON POSTs to the subscribed URL, retried with exponential backoff.

Each event becomes a `Delivery` in `PushDelivery.log` with every `Attempt` (HTTP status or transport
error). A non-2xx answer, a connection error or a timeout is retried after
`backoff * 2**(attempt-1)` seconds (capped at `backoff_max`) until `max_attempts` attempts, then the
delivery is "failed". Events raised while no subscription exists are counted in `skipped`, not queued.
Workers (`concurrency` of them) run only while the simulator's app runs; events queued before start
wait for it. Order across devices is not guaranteed (nor is it by real webhook senders).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp

from syncd.devtools.simulators.kg_core import StateChange


@dataclasses.dataclass(frozen=True)
class PushEvent:
    """What the body builder gets: the event's id and name, and the device change behind it."""

    id: str
    event: str
    change: StateChange


EventBody = Callable[[PushEvent], Mapping[str, Any] | bytes]


def default_event_body(ev: PushEvent) -> dict[str, Any]:
    """The default push body, shaped like a Knox Guard event."""
    device = ev.change.device
    return {
        "id": ev.id,
        "event": ev.event,
        "deviceUid": device.device_uid,
        "objectId": device.object_id,
        "imei": device.imei,
        "imei2": device.imei2,
        "status": ev.change.status,
        "previousStatus": ev.change.previous,
        "timestamp": ev.change.timestamp,
    }


@dataclasses.dataclass
class Attempt:
    """One POST of a delivery: when, the HTTP status (None on transport error) and the error."""

    at: float
    status: int | None
    error: str | None
    elapsed: float


@dataclasses.dataclass
class Delivery:
    """One event on its way to the subscriber."""

    id: str
    event: str
    device_uid: str
    url: str
    body: bytes
    state: Literal["pending", "delivered", "failed", "dropped"] = "pending"
    attempts: list[Attempt] = dataclasses.field(default_factory=list)

    @property
    def payload(self) -> Any:
        """The body as JSON (raises if a custom body builder sent something else)."""
        return json.loads(self.body)


class PushDelivery:
    """Queue, workers and retry policy for pushed events, with a readable delivery log."""

    def __init__(self, *, max_attempts: int = 5, backoff: float = 0.5, backoff_max: float = 30.0,
                 timeout: float = 5.0, concurrency: int = 4, log_limit: int = 100_000,
                 event_body: EventBody = default_event_body) -> None:
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.concurrency = concurrency
        self.event_body = event_body
        self.url: str | None = None  # the client's subscription
        self.log: collections.deque[Delivery] = collections.deque(maxlen=log_limit)
        self.skipped = 0
        self._backlog: list[Delivery] = []
        self._queue: asyncio.Queue[Delivery] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._retries: dict[asyncio.TimerHandle, Delivery] = {}
        self._session: aiohttp.ClientSession | None = None
        self._open = 0
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def pending(self) -> int:
        """Deliveries neither delivered, failed nor dropped yet."""
        return self._open

    def delivered(self) -> list[Delivery]:
        """Deliveries the subscriber acknowledged with 2xx."""
        return [d for d in self.log if d.state == "delivered"]

    def enqueue(self, change: StateChange, event: str | None = None) -> Delivery | None:
        """Queue a push for `change` (None when there is no subscription)."""
        if self.url is None:
            self.skipped += 1
            return None
        ev = PushEvent(str(uuid.uuid4()), event or change.event, change)
        body = self.event_body(ev)
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        delivery = Delivery(ev.id, ev.event, change.device.device_uid, self.url, raw)
        self.log.append(delivery)
        self._open += 1
        self._put(delivery)
        return delivery

    async def start(self) -> None:
        """Open the HTTP session and start the workers (queued events are sent now)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._queue = asyncio.Queue()
        for delivery in self._backlog:
            self._queue.put_nowait(delivery)
        self._backlog.clear()
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        """Cancel workers and pending retries, close the session; undelivered events stay queued."""
        for handle, delivery in self._retries.items():
            handle.cancel()
            self._backlog.append(delivery)
        self._retries.clear()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._queue is not None:
            while not self._queue.empty():
                self._backlog.append(self._queue.get_nowait())
            self._queue = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued delivery is delivered, failed or dropped."""
        if not self._open:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        await asyncio.wait_for(waiter, timeout)

    def _put(self, delivery: Delivery) -> None:
        if self._queue is None:
            self._backlog.append(delivery)
        else:
            self._queue.put_nowait(delivery)

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            delivery = await queue.get()
            try:
                await self._attempt(delivery)
            except asyncio.CancelledError:
                self._backlog.append(delivery)  # resent when the app starts again
                raise
            finally:
                queue.task_done()

    async def _attempt(self, delivery: Delivery) -> None:
        if self.url != delivery.url:  # unsubscribed (or re-subscribed elsewhere) meanwhile
            self._close(delivery, "dropped")
            return
        assert self._session is not None
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(delivery.url, data=delivery.body,
                                          headers={"Content-Type": "application/json"}) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            error = f"{type(err).__name__}: {err}"
        delivery.attempts.append(Attempt(time.time(), status, error,
                                         time.monotonic() - started))
        if status is not None and 200 <= status < 300:
            self._close(delivery, "delivered")
        elif len(delivery.attempts) >= self.max_attempts:
            self._close(delivery, "failed")
        else:
            delay = min(self.backoff * 2 ** (len(delivery.attempts) - 1), self.backoff_max)
            handle: asyncio.TimerHandle | None = None

            def retry() -> None:
                if handle is not None:
                    self._retries.pop(handle, None)
                self._put(delivery)

            handle = asyncio.get_running_loop().call_later(delay, retry)
            self._retries[handle] = delivery

    def _close(self, delivery: Delivery, state: Literal["delivered", "failed", "dropped"]) -> None:
        delivery.state = state
        self._open -= 1
        if not self._open:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

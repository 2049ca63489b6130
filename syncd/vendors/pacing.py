"""How often vendor calls go out and how patiently they are repeated: the pacer (a sliding window
per vendor), the retry policy (syncd's one backoff, full jitter) and Retry-After parsing."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import math
import random
import time
from datetime import UTC

from syncd.backoff import Backoff


class Pacer:
    """Spaces request starts evenly at `rate` per second, never more than `rate` in any second.

    Slots lie on a fixed grid, so event-loop lateness is not added to every gap (measuring from
    when each caller woke loses ~15% of the rate to timer slack). A grid alone could let a late
    start be followed by on-time ones and put rate+1 starts in one second, so the last starts are
    also remembered and a start waits until the one `rate` places back is a second (plus a
    margin) old, mirroring the vendor's own sliding window. The margin, two slots but at least
    10 ms, absorbs arrivals bunching up on the way (a loaded vendor or client event loop). After a
    quiet spell the grid restarts at "now": nothing accumulates while idle, so no burst follows.
    """

    MIN_MARGIN = 0.01  # seconds

    def __init__(self, rate_per_second: float) -> None:
        if not (math.isfinite(rate_per_second) and rate_per_second > 0):
            raise ValueError("rate_per_second must be a positive finite number")
        self.interval = 1.0 / rate_per_second
        per_window = max(1, math.floor(rate_per_second))
        self.window = max(1.0, self.interval) + max(self.MIN_MARGIN, 2 * self.interval)
        self._starts: collections.deque[float] = collections.deque(maxlen=per_window)
        self._lock = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order: fair
        self._next: float | None = None

    async def wait(self) -> None:
        """Return when the caller may start its request."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            slot = now if self._next is None else max(self._next, now)
            if len(self._starts) == self._starts.maxlen:
                slot = max(slot, self._starts[0] + self.window)
            self._next = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            self._starts.append(loop.time())


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed call is repeated."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0  # a longer Retry-After is raised to the caller, not slept

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter delay before retry number `attempt` (0-based), by syncd's one policy."""
        return Backoff(self.base_delay, self.max_delay).delay(attempt, rng)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return max(0.0, seconds) if math.isfinite(seconds) else None

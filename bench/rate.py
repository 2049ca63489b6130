"""`rate`: how close syncd's NeoLock client runs to the vendor's strict 100 requests/s, without a 429.

The in-process NeoLock simulator enforces 100 requests in any 1 s window per token. syncd re-reads
DEVICES devices with neolock.refresh() (16 at a time, as NeoLockDevicesJob does) through a client
built from settings with `neolock.rate_limit` = RATES[0]. The rate is what the simulator's limiter
saw: request arrivals, first to last. If that rate draws any 429, lower rates are tried in turn,
to find the highest one that is safe.
"""

from __future__ import annotations

import collections
import dataclasses
import time

from bench.common import Postgres, Report
from syncd.devtools.simulators.common import SlidingWindowLimiter, serve
from syncd.devtools.simulators.neolock import (
    BASE_PATH,
    DEFAULT_LOGIN,
    DEFAULT_PASSWORD,
    NeoLockSim,
    create_app,
)
from syncd.runtime import open_http
from syncd.settings.vendors import NeoLockSettings
from syncd.sync.neolock import neolock_client, refresh

DEVICES = 450  # ~4.6 s of requests at 98/s
LIMIT = 100
RATES = (98.0, 97.0, 96.0, 95.0, 93.0, 90.0)
TARGET = 0.95
DEVICE_ROUTE = BASE_PATH + "/clients/devices/{deviceUid}"


class RecordingLimiter(SlidingWindowLimiter):
    """The simulator's limiter, also noting when each request reached it, per key."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        super().__init__(limit, window)
        self.arrivals: dict[str, list[float]] = collections.defaultdict(list)

    def check(self, key: str, now: float | None = None) -> float | None:
        """Record the arrival, then decide as the simulator does."""
        now = time.monotonic() if now is None else now
        self.arrivals[key].append(now)
        return super().check(key, now)


@dataclasses.dataclass
class Attempt:
    """One run at one configured rate."""

    configured: float
    requests: int
    rate_limited: int
    achieved: float  # requests per second between the first and the last arrival
    busiest_second: int  # most arrivals in any 1 s window
    seconds: float
    failed: int


def busiest(arrivals: list[float], window: float = 1.0) -> int:
    """The most arrivals inside any half-open window of `window` seconds."""
    most, first = 0, 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most


async def attempt(rate: float) -> Attempt:
    """Refresh every simulated device through a client configured for `rate` requests/s."""
    sim = NeoLockSim(seed=3, devices=DEVICES, rate_limit=LIMIT)
    limiter = sim.limiter = RecordingLimiter(LIMIT, 1.0)
    async with serve(create_app(sim), prefix=BASE_PATH) as running, open_http() as session:
        settings = NeoLockSettings(base_url=running.url, login=DEFAULT_LOGIN,
                                   password=DEFAULT_PASSWORD, rate_limit=rate)
        client = neolock_client(settings, session)
        began = time.perf_counter()
        found = await refresh(client, list(sim.devices), concurrency=16)
        seconds = time.perf_counter() - began
        route = running.counters[DEVICE_ROUTE]
        requests, rate_limited = route.requests, running.counters.rate_limited
    # The busiest key is the device token's; the token call itself is keyed by its Basic header.
    arrivals = max(limiter.arrivals.values(), key=len)
    span = arrivals[-1] - arrivals[0]
    achieved = (len(arrivals) - 1) / span if span > 0 else 0.0
    return Attempt(rate, requests, rate_limited, achieved, busiest(arrivals), seconds,
                   len(found.failed))


def _line(a: Attempt) -> str:
    gap, interval = 1000 / a.achieved if a.achieved else 0.0, 1000 / a.configured
    return (f"rate_limit {a.configured:g}/s: {a.requests} device GETs in {a.seconds:.2f} s, achieved "
            f"{a.achieved:.2f}/s (mean gap {gap:.2f} ms vs {interval:.2f} ms configured), busiest "
            f"1 s window {a.busiest_second}, {a.rate_limited} × 429"
            + (f", {a.failed} failed" if a.failed else ""))


async def run(pg: Postgres) -> Report:
    """Run at RATES[0]; on any 429, step down until a rate draws none. No database needed."""
    tried: list[Attempt] = []
    for rate in RATES:
        tried.append(await attempt(rate))
        if tried[-1].rate_limited == 0:
            break
    best = tried[-1]
    ratio = best.achieved / LIMIT
    met = ratio >= TARGET and best.rate_limited == 0 and best.failed == 0
    details = [_line(a) for a in tried]
    details.append(f"{DEVICES} devices via neolock.refresh(), concurrency 16, against the "
                   f"simulator's strict {LIMIT} requests in any 1 s; rate = limiter arrivals, first to last")
    if len(tried) > 1:
        details.append(f"429s at {tried[0].configured:g}/s; highest safe setting found: "
                       f"{best.configured:g}/s" if best.rate_limited == 0 else "no safe setting found")
    return Report("rate_vs_limit", f"{ratio:.2f} with {best.rate_limited} × 429",
                  f"≥ {TARGET} with 0 × 429", met, details)

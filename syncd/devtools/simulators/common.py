"""Shared machinery of the vendor simulators: faults, counters, rate limits, running on port 0.

The simulators are fakes of real vendors, used by syncd's tests, `make demo` and the benchmarks.
They never import syncd's vendor clients or models: each side reads the vendor docs on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class FaultSpec:
    """Faults injected into one route (or every route, under the key "*").

    Rates are probabilities in [0, 1], drawn from the simulator's seeded RNG.
    """

    latency: float = 0.0  # seconds added before answering
    error_rate: float = 0.0  # answer 500 with a JSON error body
    tertiary_rate: float = 0.0  # answer 502 "Tertiary endpoint error" (API-gateway style)
    hang_rate: float = 0.0  # never answer (until the client gives up)
    throttle_rate: float = 0.0  # answer 429 with Retry-After (a rate-limit storm)
    retry_after: int = 1  # the Retry-After (seconds) of a throttled answer
    malformed_rate: float = 0.0  # answer 200 with a body that is not valid JSON
    truncate_rate: float = 0.0  # answer 200 with the real body cut in half


@dataclasses.dataclass
class RouteCounters:
    """What one route has seen."""

    requests: int = 0
    rate_limited: int = 0  # answered 429
    quota_used: int = 0
    faults: int = 0


class Counters:
    """Per-route counters that tests and benchmarks read."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteCounters] = collections.defaultdict(RouteCounters)

    def __getitem__(self, route: str) -> RouteCounters:
        return self.routes[route]

    @property
    def requests(self) -> int:
        """All requests seen, on every route."""
        return sum(c.requests for c in self.routes.values())

    @property
    def rate_limited(self) -> int:
        """All 429 answers given, on every route."""
        return sum(c.rate_limited for c in self.routes.values())

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.routes.clear()


class SlidingWindowLimiter:
    """A strict sliding-window limit: at most `limit` requests in any `window` seconds, per key."""

    def __init__(self, limit: int = 100, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def check(self, key: str, now: float | None = None) -> float | None:
        """Record a request; return None when allowed, else the seconds until a slot frees."""
        now = time.monotonic() if now is None else now
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window - now, 0.001)
        hits.append(now)
        return None


def route_key(request: web.Request) -> str:
    """The route's canonical path (e.g. "/api/devices/{deviceUid}"), or the raw path if unmatched."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return request.path
    return resource.canonical


class Faults:
    """Fault configuration by route key, with a seeded RNG so runs are reproducible."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.specs: dict[str, FaultSpec] = {}

    def set(self, route: str, spec: FaultSpec) -> None:
        """Inject `spec` on `route` ("*" for every route)."""
        self.specs[route] = spec

    def clear(self, route: str | None = None) -> None:
        """Stop injecting faults on `route`, or on every route."""
        if route is None:
            self.specs.clear()
        else:
            self.specs.pop(route, None)

    def for_route(self, route: str) -> FaultSpec | None:
        """The spec in force for `route`: its own, else the "*" one."""
        return self.specs.get(route) or self.specs.get("*")

    def draw(self, rate: float) -> bool:
        """True with probability `rate`."""
        return rate > 0 and self.rng.random() < rate


COUNTERS_KEY = web.AppKey("sim_counters", Counters)
FAULTS_KEY = web.AppKey("sim_faults", Faults)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request and apply the route's configured faults."""
    counters = request.app[COUNTERS_KEY]
    faults = request.app[FAULTS_KEY]
    key = route_key(request)
    counters[key].requests += 1
    spec = faults.for_route(key)
    if spec is None:
        return await handler(request)
    if spec.latency:
        await asyncio.sleep(spec.latency)
    if faults.draw(spec.hang_rate):
        counters[key].faults += 1
        await asyncio.sleep(3600)
    if faults.draw(spec.throttle_rate):
        counters[key].faults += 1
        counters[key].rate_limited += 1
        return web.json_response({"message": "Too Many Requests"}, status=429,
                                 headers={"Retry-After": str(spec.retry_after)})
    if faults.draw(spec.error_rate):
        counters[key].faults += 1
        return web.json_response(
            {"code": 500, "message": "Internal Server Error", "error": "Internal Server Error"},
            status=500,
        )
    if faults.draw(spec.tertiary_rate):
        counters[key].faults += 1
        return web.json_response({"message": "Tertiary endpoint error"}, status=502)
    if faults.draw(spec.malformed_rate):
        counters[key].faults += 1
        return web.Response(text='{"result": "SUCCESS", "data": [{"broken', status=200,
                            content_type="application/json")
    response = await handler(request)
    if faults.draw(spec.truncate_rate) and isinstance(response, web.Response) and response.body:
        counters[key].faults += 1
        body = bytes(response.body)  # type: ignore[arg-type]
        return web.Response(body=body[: len(body) // 2], status=response.status,
                            content_type=response.content_type)
    return response


def make_app(seed: int = 0, *, middlewares: list[Any] | None = None) -> web.Application:
    """A simulator Application with counters and faults installed (fault middleware first)."""
    app = web.Application(middlewares=[fault_middleware, *(middlewares or [])])
    app[COUNTERS_KEY] = Counters()
    app[FAULTS_KEY] = Faults(seed)
    return app


class Running:
    """A simulator served on loopback: its base URL and its Application."""

    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app = app
        self.runner = runner
        self.url = url

    @property
    def counters(self) -> Counters:
        """The simulator's per-route counters."""
        return self.app[COUNTERS_KEY]

    @property
    def faults(self) -> Faults:
        """The simulator's fault configuration."""
        return self.app[FAULTS_KEY]


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                prefix: str = "") -> AsyncIterator[Running]:
    """Serve `app` on host:port (0 picks a free port) and yield it with its base URL (+ prefix)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    try:
        yield Running(app, runner, f"http://{host}:{bound_port}{prefix}")
    finally:
        await runner.cleanup()

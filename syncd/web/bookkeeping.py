"""Request id, JSON errors, per-route metrics and the access line, for every request.

Not an aiohttp middleware: each route's handler is wrapped once, when it is added
(`Bookkeeping.add_routes`), with its route template, access-line level and listener check worked
out then. The app then has no middleware at all, so aiohttp builds no middleware chain and runs
no extra coroutine layers a request (its own `_fix_request_current_app` included). Profiled on
the intake route, the two middlewares this replaces cost a push about as much as everything
else syncd does with it. A last catch-all route answers what no route matches (404, or 405 with
`Allow`) through the same bookkeeping, as route "unmatched".
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

import structlog
from aiohttp import web
from multidict import istr

from syncd import logs
from syncd.errors import DatabaseUnavailable
from syncd.transition import Transition
from syncd.web import keys

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CLIENT_CLOSED = 499  # nginx's convention: the client went away before its answer


def error_response(status: int, message: str, request_id: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error body: {"error": message, "status": status, "request_id": …}."""
    body: dict[str, object] = {"error": message, "status": status}
    if request_id:
        body["request_id"] = request_id
    return web.json_response(body, status=status, headers=headers)


class InFlight:
    """Counts requests being handled, so shutdown can wait for them after it stops listening.

    The bookkeeping adds and takes away one around each handler (`count += 1`, `count -= 1`, no
    call a request); shutdown polls for zero, once, when it stops listening.
    """

    POLL = 0.02  # seconds between looks while waiting for the last requests

    def __init__(self) -> None:
        self.count = 0

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(self.POLL, max(0.0, deadline - loop.time())))
        return True


INFLIGHT = web.AppKey("inflight", InFlight)
# Requests refused because the database is down: the first of a spell is logged, the rest counted.
DB_REFUSALS = web.AppKey("db_refusals", Transition)


def db_refusals() -> Transition:
    """The transition logger for requests refused while the database is unavailable."""
    return Transition(log, "http.database_unavailable", "http.database_recovered")


# Bound for the access line by a handler that knows the event it handled (intake).
EVENT_ID = web.RequestKey("event_id", str)
X_REQUEST_ID = istr("X-Request-ID")


Check = Callable[[web.Request], bool]  # whether the accepting listener serves the route
UNMATCHED = "unmatched"  # the route label of a request no route matches


class Bookkeeping:
    """What every request's wrapper needs, bound once when the routes are added: the in-flight
    count, the per-request metrics, the database-refusal transition, and the access line's
    logger (bound once: the module's lazy `log` binds a new logger and output on every call,
    which for one access line a push cost as much as rendering the line)."""

    def __init__(self, app: web.Application) -> None:
        self.inflight = app[INFLIGHT]
        self.metrics = app[keys.METRICS].per_request
        self.refusals = app[DB_REFUSALS]
        self.access_log: structlog.typing.FilteringBoundLogger = log.bind()

    def add_routes(self, app: web.Application, table: Iterable[web.AbstractRouteDef],
                   check: Callable[[Handler], Check | None] = lambda handler: None) -> None:
        """Add `table`'s routes to `app`, each handler wrapped (see `wrap`); `check(handler)`
        gives the route's listener check, None for a route every listener serves."""
        app.add_routes([
            web.RouteDef(route.method, route.path,
                         self.wrap(route.handler, route.path, check(route.handler)), route.kwargs)
            if isinstance(route, web.RouteDef) else route for route in table])

    def add_unmatched(self, app: web.Application) -> None:
        """The catch-all route, added last: 404, or 405 naming the methods the path allows."""
        resource = app.router.add_resource("/{unmatched_path:.*}", name=UNMATCHED)

        async def unmatched(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            for other in request.app.router.resources():
                if other is not resource:
                    found, methods = await other.resolve(request)
                    if found is None:
                        allowed |= methods
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, allowed)
            raise web.HTTPNotFound()

        resource.add_route("*", self.wrap(unmatched, UNMATCHED, None))

    def wrap(self, handler: Handler, route: str, check: Check | None) -> Handler:
        """`handler` with the bookkeeping: a request id bound into the log context (an incoming
        safe X-Request-ID, else a new one) and echoed, every failure answered as JSON, the
        request counted and timed under `route` (the template, never the path: a path can carry
        a secret), one access line at the route's level, 404 where `check` refuses.

        This runs for every request, the hot intake and registry routes included, so it does the
        least it can: plain-number metrics, one context variable set and reset (logs.REQUEST_ID,
        not structlog's bound_contextvars, which copies the whole context), and no access line
        built unless it is logged.
        """
        # At info for vendor pushes, at debug for everything else (probes and scrapes every few
        # seconds would drown the log).
        level = logging.INFO if route.startswith("/hooks/") else logging.DEBUG
        inflight, refusals, access_log = self.inflight, self.refusals, self.access_log
        record = self.metrics.recorder(route)
        perf_counter, valid_id, new_id, request_ids = (
            time.perf_counter, _REQUEST_ID.match, _new_request_id, logs.REQUEST_ID)

        @functools.wraps(handler)
        async def bookkept(request: web.Request) -> web.StreamResponse:
            started = perf_counter()
            incoming = request.headers.get(X_REQUEST_ID)
            request_id = incoming if incoming and valid_id(incoming) else new_id()
            inflight.count += 1
            token = request_ids.set(request_id)
            try:
                try:
                    if check is not None and not check(request):
                        raise web.HTTPNotFound()
                    response = await handler(request)
                except Exception as exc:  # every failure becomes a JSON answer (see _failure)
                    response = _failure(exc, request, request_id, route, refusals)
                else:
                    # a write went through: the database is back
                    if refusals.is_failing and request.method == "POST" and response.status < 500:
                        refusals.ok()
                response.headers[X_REQUEST_ID] = request_id
                seconds = perf_counter() - started
                status = response.status
                method = request.method
                record(method, status, seconds)
                if logs.enabled(level):
                    access_log.log(level, "http.access", route=route, method=method,
                                   status=status, seconds=round(seconds, 4),
                                   event_id=request.get(EVENT_ID))
            finally:
                request_ids.reset(token)
                inflight.count -= 1
            if isinstance(response, web.HTTPException):  # a redirect: aiohttp answers it raised
                raise response
            return response

        return bookkept


# Built by create_app once INFLIGHT, METRICS and DB_REFUSALS are set, after logging is configured.
BOOKKEEPING = web.AppKey("request_bookkeeping", Bookkeeping)


def _request_ids() -> Iterator[str]:
    """32 hex digits: a random per-process prefix and a counter (unique without a syscall each)."""
    prefix = os.urandom(8).hex()
    for n in itertools.count():
        yield f"{prefix}{n:016x}"


_new_request_id = _request_ids().__next__


def _failure(exc: Exception, request: web.Request, request_id: str, route: str,
             refusals: Transition) -> web.StreamResponse:
    """The JSON error answer (carrying the request id) for what the handler raised; a raised
    redirect (status below 400) is handed back as it is."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return exc
        return error_response(exc.status, exc.reason if exc.text is None or
                              exc.text.startswith(f"{exc.status}:") else exc.text,
                              request_id, headers={k: v for k, v in exc.headers.items()
                                                   if k.lower() in ("retry-after", "allow")})
    if isinstance(exc, ConnectionResetError):  # the client disconnected (mid-body, most often)
        log.info("http.client_closed", route=route, method=request.method)
        return web.Response(status=CLIENT_CLOSED)  # nobody reads it; counted as such
    if isinstance(exc, DatabaseUnavailable):
        refusals.fail(route=route)  # 503s are counted in http_requests
        return error_response(503, "database unavailable; retry later", request_id,
                              headers={"Retry-After": "5"})
    log.exception("http.unhandled", route=route, method=request.method)  # in the except block
    return error_response(500, "internal error", request_id)

"""Request id, JSON errors, and per-route metrics for every request."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator

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
    """Counts requests being handled, so shutdown can wait for them after it stops listening."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request's handler started."""
        if not self.count:
            self._idle.clear()
        self.count += 1

    def leave(self) -> None:
        """A request's handler finished."""
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
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


class Bookkeeping:
    """What the middleware needs on every request, found with one lookup (app[BOOKKEEPING]):
    the in-flight count, the per-request metrics, the database-refusal transition, the access
    line's logger (bound once: the module's lazy `log` binds a new logger and output on every
    call, which for one access line a push cost as much as rendering the line), and each route's
    template and access-line level, worked out once per route."""

    def __init__(self, app: web.Application) -> None:
        self.inflight = app[INFLIGHT]
        self.metrics = app[keys.METRICS].per_request
        self.refusals = app[DB_REFUSALS]
        self.access_log: structlog.typing.FilteringBoundLogger = log.bind()
        self._routes: dict[object, tuple[str, int]] = {}

    def route(self, request: web.Request) -> tuple[str, int]:
        """The request's route template ("unmatched" for none) and its access-line level."""
        resource = request.match_info.route.resource
        found = self._routes.get(resource)
        if found is None:
            route = resource.canonical if resource is not None else "unmatched"
            # At info for vendor pushes, at debug for everything else (probes and scrapes every
            # few seconds would drown the log).
            found = (route, logging.INFO if route.startswith("/hooks/") else logging.DEBUG)
            self._routes[resource] = found
        return found


# Built by create_app once INFLIGHT, METRICS and DB_REFUSALS are set, after logging is configured.
BOOKKEEPING = web.AppKey("request_bookkeeping", Bookkeeping)


def _request_ids() -> Iterator[str]:
    """32 hex digits: a random per-process prefix and a counter (unique without a syscall each)."""
    prefix = os.urandom(8).hex()
    for n in itertools.count():
        yield f"{prefix}{n:016x}"


_new_request_id = _request_ids().__next__


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id into the log context, answer errors as JSON, count the request.

    This runs for every request, the hot intake and registry routes included, so it does the
    least it can: one app lookup, plain-number metrics, one context variable set and reset
    (logs.REQUEST_ID, not structlog's bound_contextvars, which copies the whole context), and no
    access line built unless it is logged.
    """
    started = time.perf_counter()
    incoming = request.headers.get(X_REQUEST_ID)
    request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _new_request_id()
    book = request.app[BOOKKEEPING]
    route, level = book.route(request)
    book.inflight.enter()
    token = logs.REQUEST_ID.set(request_id)
    try:
        try:
            response = await handler(request)
        except Exception as exc:  # every failure becomes a JSON answer (see _failure)
            response = _failure(exc, request, request_id, route, book)
        else:
            if request.method == "POST" and response.status < 500:
                book.refusals.ok()  # a write went through: the database is back
        response.headers[X_REQUEST_ID] = request_id
        seconds = time.perf_counter() - started
        status = response.status
        book.metrics.request(route, request.method, status, seconds)
        # One access line per request, at the route's level. Logs name the route
        # (/hooks/neolock/{secret}), never the path: a path can carry a secret.
        if logs.enabled(level):
            book.access_log.log(level, "http.access", route=route, method=request.method,
                                status=status, seconds=round(seconds, 4),
                                event_id=request.get(EVENT_ID))
    finally:
        logs.REQUEST_ID.reset(token)
        book.inflight.leave()
    return response


def _failure(exc: Exception, request: web.Request, request_id: str, route: str,
             book: Bookkeeping) -> web.StreamResponse:
    """The JSON error answer (carrying the request id) for what the handler raised."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(exc.status, exc.reason if exc.text is None or
                              exc.text.startswith(f"{exc.status}:") else exc.text,
                              request_id, headers={k: v for k, v in exc.headers.items()
                                                   if k.lower() in ("retry-after", "allow")})
    if isinstance(exc, ConnectionResetError):  # the client disconnected (mid-body, most often)
        log.info("http.client_closed", route=route, method=request.method)
        return web.Response(status=CLIENT_CLOSED)  # nobody reads it; counted as such
    if isinstance(exc, DatabaseUnavailable):
        book.refusals.fail(route=route)  # 503s are counted in http_requests
        return error_response(503, "database unavailable; retry later", request_id,
                              headers={"Retry-After": "5"})
    log.exception("http.unhandled", route=route, method=request.method)  # in the except block
    return error_response(500, "internal error", request_id)

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
# The access line's logger, bound once per app (see access_log()).
ACCESS_LOG = web.AppKey("access_log", structlog.typing.FilteringBoundLogger)


def access_log() -> structlog.typing.FilteringBoundLogger:
    """This module's logger, bound now: logging configured, the app being built.

    The module-level `log` is a lazy proxy that binds a new logger (and its output) on every call;
    one access line a push made that bind cost as much as rendering the line.
    """
    bound: structlog.typing.FilteringBoundLogger = log.bind()
    return bound


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
    least it can: plain-number metrics, one context variable set and reset (logs.REQUEST_ID, not
    structlog's bound_contextvars, which copies the whole context), and no access line built
    unless it is logged.
    """
    started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID")
    request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _new_request_id()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    app = request.app
    inflight = app[INFLIGHT]
    inflight.enter()
    token = logs.REQUEST_ID.set(request_id)
    try:
        response = await _handle(request, handler, request_id, route, app)
        seconds = time.perf_counter() - started
        status = response.status
        app[keys.METRICS].http_request(route, request.method, status, seconds)
        # One access line per request: at info for vendor pushes, at debug for everything else
        # (probes and scrapes every few seconds would drown the log). Logs name the route
        # (/hooks/neolock/{secret}), never the path: a path can carry a secret.
        level = logging.INFO if route.startswith("/hooks/") else logging.DEBUG
        if logs.enabled(level):
            app[ACCESS_LOG].log(level, "http.access", route=route, method=request.method,
                                status=status, seconds=round(seconds, 4),
                                event_id=request.get(EVENT_ID))
    finally:
        logs.REQUEST_ID.reset(token)
        inflight.leave()
    return response


async def _handle(request: web.Request, handler: Handler, request_id: str, route: str,
                  app: web.Application) -> web.StreamResponse:
    """Run the handler; turn every failure into a JSON error carrying the request id."""
    try:
        response = await handler(request)
        if request.method == "POST" and response.status < 500:
            app[DB_REFUSALS].ok()  # a write went through: the database is back
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason if exc.text is None or
                                  exc.text.startswith(f"{exc.status}:") else exc.text,
                                  request_id, headers={k: v for k, v in exc.headers.items()
                                                       if k.lower() in ("retry-after", "allow")})
    except ConnectionResetError:  # the client disconnected (mid-body, most often)
        log.info("http.client_closed", route=route, method=request.method)
        response = web.Response(status=CLIENT_CLOSED)  # nobody reads it; counted as such
    except DatabaseUnavailable:
        app[DB_REFUSALS].fail(route=route)  # 503s are counted in http_requests
        response = error_response(503, "database unavailable; retry later", request_id,
                                  headers={"Retry-After": "5"})
    except Exception:
        log.exception("http.unhandled", route=route, method=request.method)
        response = error_response(500, "internal error", request_id)
    response.headers["X-Request-ID"] = request_id
    return response

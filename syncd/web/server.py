"""The listening side of syncd's web server: bounded idle time, bounded connections, no echoes.

- Keep-alive: an idle connection (also one that never sends a whole request head) is closed
  after `server.keepalive_timeout` seconds (aiohttp's default is about an hour).
- Connection cap: past `server.max_connections` open connections, each new one closes the
  oldest *idle* connection, so a flood of idle or half-sent connections can neither exhaust file
  descriptors (accept() failing with EMFILE stalls every client) nor lock out /healthz.
- Two listeners: the public one (`server.*`: vendor pushes, the app registry) and the admin one
  (`admin.*`: the console, status). Each connection's handler knows which listener accepted it
  (`listener_of()`); `syncd.web.listeners` decides from that which routes answer.
- Bad requests: aiohttp answers malformed requests itself, echoing the parser's message, which
  can quote the request line (a hook URL holds a secret). syncd answers with the status alone
  and logs no request text.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from syncd.settings.service import AdminSettings, ServerSettings
from syncd.transition import Transition

log = structlog.get_logger(__name__)
MAX_AUTO_CONNECTIONS = 10_000
BACKLOG = 128  # the listen backlog (aiohttp's default)
# aiohttp's own wait for handlers comes *after* the daemon's drain, which already gave them
# server.shutdown_timeout: a short grace, so the whole stop stays within one deadline.
AIOHTTP_GRACE = 0.5
PUBLIC = "public"
ADMIN = "admin"
ADMIN_MAX_CONNECTIONS = 64  # a few operators' browsers and a scraper


def app_runner(app: web.Application, server: ServerSettings) -> web.AppRunner:
    """The runner of syncd's app: idle connections bounded, no access log, signals ours."""
    return web.AppRunner(app, handle_signals=False, access_log=None,
                         shutdown_timeout=AIOHTTP_GRACE,
                         keepalive_timeout=server.keepalive_timeout)


def site(runner: web.AppRunner, server: ServerSettings) -> CappedSite:
    """The listening site for `server.host`/`server.port`, with the connection cap."""
    return CappedSite(runner, server.host, server.port, reuse_address=True, backlog=BACKLOG,
                      max_connections=connection_cap(server.max_connections))


def admin_site(runner: web.AppRunner, admin: AdminSettings) -> CappedSite:
    """The admin listening site for `admin.host`/`admin.port` (the console, status)."""
    return CappedSite(runner, admin.host, admin.port, reuse_address=True, backlog=BACKLOG,
                      max_connections=ADMIN_MAX_CONNECTIONS, listener=ADMIN)


def listener_of(request: web.Request) -> str:
    """Which listener accepted the request: ADMIN, else PUBLIC (also for any site not syncd's)."""
    return getattr(request.protocol, "listener", PUBLIC)


def connection_cap(configured: int, backlog: int = BACKLOG) -> int:
    """`server.max_connections`, or (0) one that leaves file descriptors spare: a quarter of
    the open-file limit, and at least two accept bursts plus 64 for the pool, logs and vendor
    connections. asyncio accepts up to `backlog` connections per loop turn, and both counting a
    new connection and closing the one it evicts lag a turn behind, so a flood on a loaded machine
    can still meet EMFILE in passing (asyncio then pauses accepting for a second). More spare
    costs places: a cap far below the flood evicts real clients before their request is read."""
    if configured > 0:
        return configured
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_AUTO_CONNECTIONS
    return max(16, min(MAX_AUTO_CONNECTIONS, soft - max(2 * backlog + 64, soft // 4)))


class _Handler(RequestHandler):
    """aiohttp's connection handler, answering malformed requests without echoing them, and
    knowing the listener that accepted its connection."""

    listener = PUBLIC

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 500 and message is not None:  # a parser message: may quote the request
            log.info("http.bad_request", status=status, error=type(exc).__name__)
            response = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}")
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


def _idle(handler: RequestHandler) -> bool:
    # Waiting for a (next) request head: what aiohttp's own keep-alive expiry closes.
    waiter = handler._waiter  # aiohttp has no public "idle" flag
    return waiter is not None and not waiter.done()


class CappedSite(web.TCPSite):
    """A TCPSite whose connections are capped (oldest idle evicted) and handled by `_Handler`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 listener: str = PUBLIC, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.max_connections = max_connections
        self.listener = listener
        self.evicted = 0
        self._crowded = Transition(log, "http.connection_cap_reached", "http.connections_below_cap")

    async def start(self) -> None:
        """Listen, creating each connection's handler through the cap."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._connection(server), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    def _connection(self, server: web.Server) -> RequestHandler:
        # Both listeners share one aiohttp Server. The public cap guards file descriptors, so it
        # counts every connection; the admin site counts (and evicts) only its own.
        connections = server.connections
        if self.listener != PUBLIC:
            connections = [c for c in connections if getattr(c, "listener", PUBLIC) == self.listener]
        if len(connections) >= self.max_connections:
            for old in [c for c in connections if _idle(c)][
                    : len(connections) - self.max_connections + 1]:
                old.force_close()
                if old.transport is not None:
                    old.transport.close()  # now, not when its task next runs: frees the fd
                self.evicted += 1
            self._crowded.fail(connections=len(connections), cap=self.max_connections,
                               listener=self.listener)
        else:
            self._crowded.ok()
        handler = _Handler(server, loop=server._loop, **server._kwargs)  # as Server.__call__
        handler.listener = self.listener
        return handler


def read_body(request: web.Request, timeout: float) -> Awaitable[bytes]:
    """The request body, or 408 when it does not arrive within `timeout` seconds.

    A plain function handing back the awaitable, not a coroutine: when all of the body came with
    the head (almost every push) it is aiohttp's own read, with no timer and no extra frame.
    """
    if request.content.is_eof():
        return request.read()
    return _read_within(request, timeout)


async def _read_within(request: web.Request, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the request body did not arrive in time") from None

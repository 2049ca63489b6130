"""`syncd run`: the long-running daemon, its systemd handshake and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import structlog
from aiohttp import web

import syncd
from syncd import heap
from syncd.app import create_app
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.logs import Redactor
from syncd.sdnotify import Notifier
from syncd.settings.checks import config_warnings
from syncd.settings.core import Settings, SystemdEnv
from syncd.supervisor import Supervised
from syncd.transition import Transition
from syncd.web import keys, server
from syncd.web.bookkeeping import INFLIGHT

log = structlog.get_logger(__name__)

# Every signal that would stop the process drains it and stops the embedded PostgreSQL: SIGHUP's
# default action would kill syncd silently and orphan its postmaster. (syncd has nothing to
# reload: a config change is a restart.)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


async def watchdog(notifier: Notifier, db: Database, interval: float) -> None:
    """Ping WATCHDOG=1 every `interval` seconds while the event loop and database respond.

    A wedged event loop cannot run this loop at all, so systemd's timer fires. A database probe
    that *hangs* (pool exhausted, server frozen) also withholds the ping. A database that fast-fails
    (stopped, refusing connections) does not: syncd itself is healthy, readiness says the rest, and a
    restart would not help.
    """
    loop = asyncio.get_running_loop()
    health = Transition(log, "watchdog.withheld", "watchdog.resumed", level="error")
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        lag = loop.time() - before - interval
        healthy = lag < interval
        reason = f"event loop stalled {lag:.1f}s" if not healthy else ""
        if healthy:
            try:
                await db.ping(timeout=interval)
            except DatabaseUnavailable as err:
                if isinstance(err.__cause__, TimeoutError):
                    healthy, reason = False, "database probe timed out"
        if healthy:
            notifier.watchdog()
            health.ok()
        else:
            health.fail(reason=reason)


async def run(settings: Settings, redactor: Redactor, systemd: SystemdEnv) -> int:
    """Serve until a stopping signal, then drain within server.shutdown_timeout; return the exit code."""
    started = time.monotonic()
    for warning in config_warnings(settings):
        log.warning("config.warning", problem=warning)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    notifier = Notifier(systemd.notify_socket)
    app = create_app(settings, redactor)
    runner = server.app_runner(app, settings.server)
    watchdog_task: Supervised | None = None
    try:
        await runner.setup()
        site = server.site(runner, settings.server)
        admin = server.admin_site(runner, settings.admin)
        for listening, host, wanted in ((site, settings.server.host, settings.server.port),
                                        (admin, settings.admin.host, settings.admin.port)):
            try:
                await listening.start()
            except OSError as err:
                raise SyncdError(f"cannot listen on {host}:{wanted}"
                                 f"{' (admin listener)' if listening is admin else ''}: "
                                 f"{err.strerror or err}") from None
        port = _bound_port(site) or settings.server.port
        admin_port = _bound_port(admin) or settings.admin.port
        heap.settle()  # everything start-up built is now out of the collector's way
        seconds = round(time.monotonic() - started, 3)
        log.info("syncd.ready", version=syncd.__version__, host=settings.server.host, port=port,
                 admin_host=settings.admin.host, admin_port=admin_port, seconds=seconds)
        notifier.ready(f"serving on {settings.server.host}:{port}; console on "
                       f"http://{settings.admin.host}:{admin_port}/ui/")
        interval = systemd.watchdog_interval(os.getpid())
        if interval:
            db = app[keys.DB]
            watchdog_task = app[keys.SUPERVISOR].start(
                "watchdog", lambda: watchdog(notifier, db, interval))
        await stop.wait()
        log.info("syncd.stopping", deadline=settings.server.shutdown_timeout)
        notifier.stopping()
        await _drain(app, (site, admin), settings.server.shutdown_timeout)
    finally:
        if watchdog_task is not None:
            await watchdog_task.stop()
        await runner.cleanup()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        notifier.close()
    log.info("syncd.stopped")
    return 0


async def _drain(app: web.Application, sites: tuple[web.TCPSite, ...], deadline: float) -> None:
    """Stop listening, then let requests already being handled finish (a push whose body is still
    arriving gets its 200), within `deadline`. aiohttp's own cleanup would stop reading from
    every open connection at once."""
    if keys.SCHEDULER in app:
        app[keys.SCHEDULER].begin_stop()  # job runs and requests drain within one deadline
    for site in sites:
        await site.stop()
    inflight = app[INFLIGHT]
    if not await inflight.wait_idle(deadline):
        log.warning("syncd.drain_timeout", requests=inflight.count)


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else None

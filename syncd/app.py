"""The composition root: the aiohttp Application with every resource in a cleanup context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from syncd.db.locks import JobLocks
from syncd.inbox.worker import InboxWorker
from syncd.inbox.writer import GroupCommitter
from syncd.jobs import heartbeat
from syncd.jobs.catalog import after_sync, build_jobs
from syncd.jobs.runner import JobRunner
from syncd.jobs.scheduler import Scheduler
from syncd.logs import Redactor
from syncd.metrics import Metrics
from syncd.registry import routes as registry
from syncd.runtime import open_http, open_pools
from syncd.settings.core import Settings
from syncd.supervisor import Supervised, Supervisor
from syncd.sync.neolock import neolock_client
from syncd.vendors import usage
from syncd.web import console, health, intake, keys
from syncd.web.alerting import alerts_ctx
from syncd.web.bookkeeping import (
    BOOKKEEPING,
    DB_REFUSALS,
    INFLIGHT,
    Bookkeeping,
    InFlight,
    db_refusals,
)
from syncd.web.listeners import GATE, Gate, handlers


async def _database(app: web.Application) -> AsyncIterator[None]:
    async with open_pools(app[keys.SETTINGS], borrow=False, create=True) as pools:
        app[keys.DB] = pools.requests
        app[keys.JOBS_DB] = pools.jobs
        app[keys.METRICS].pools.watch(pools.requests)
        app[keys.METRICS].pools.watch(pools.jobs)
        yield


async def _http(app: web.Application) -> AsyncIterator[None]:
    metrics = app[keys.METRICS]
    async with open_http([usage.trace_config(metrics.vendor_request)]) as session:
        app[keys.HTTP] = session
        yield


async def _intake(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    db = app[keys.DB]
    configured = settings.neolock.webhook_secret if settings.neolock else None
    secrets = intake.HookSecrets(db, configured.get_secret_value() if configured else None)
    committer = GroupCommitter(db)
    wakeup = asyncio.Event()
    app[intake.INTAKE] = intake.Intake(db, secrets, committer, wakeup, settings.server,
                                       app[keys.METRICS].per_request.event)
    task: Supervised | None = None
    if settings.neolock is not None:
        client = app[keys.NEOLOCK] = neolock_client(settings.neolock, app[keys.HTTP])
        worker = InboxWorker(db, client, app[keys.METRICS], scrub=app[keys.REDACTOR].scrub,
                             wakeup=wakeup)
        task = app[keys.SUPERVISOR].start("inbox-worker", worker.run_forever)
    yield
    await committer.close()
    if task is not None:
        await task.stop()


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    """Register this daemon in ops.replicas, beat while it runs, and mark it stopped at the end
    (after the job runs drained: the runs cancelled at the deadline are closed with it)."""
    beat = app[keys.HEARTBEAT] = heartbeat.Heartbeat(
        app[keys.DB], heartbeat.identity("daemon", "run"), app[keys.SETTINGS],
        app[keys.SUPERVISOR], app[keys.METRICS])
    await beat.register()
    task = app[keys.SUPERVISOR].start("heartbeat", beat.run)
    yield
    await task.stop()
    await beat.stop()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    db = app[keys.JOBS_DB]
    async with JobLocks(db.dsn, connect_timeout=settings.database.connect_timeout) as job_locks:
        # As many runs at once as the job pool has connections: a run mostly waits on a vendor,
        # and one waiting for a slot holds neither a connection nor a lock.
        runner = JobRunner(db, app[keys.METRICS], scrub=app[keys.REDACTOR].scrub,
                           locks=job_locks, slots=db.max_size, replica=app[keys.HEARTBEAT].me.id)
        jobs = build_jobs(settings, db, app[keys.HTTP], neolock=app.get(keys.NEOLOCK))
        scheduler = Scheduler(runner, jobs, settings.jobs)
        app[keys.SCHEDULER] = scheduler
        runner.after_run = after_sync(scheduler.run_soon)  # reconcile soon after a sync wrote rows
        task = app[keys.SUPERVISOR].start("scheduler", scheduler.run)
        yield
        await scheduler.stop(settings.server.shutdown_timeout)
        await task.stop()


async def _begin_stop(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for in-flight requests: stop new job runs now so
    # both drains share one deadline.
    if keys.SCHEDULER in app:
        app[keys.SCHEDULER].begin_stop()


def create_app(settings: Settings, redactor: Redactor | None = None) -> web.Application:
    """Build syncd's Application; resources open when a runner starts it."""
    # No middleware: every route's handler carries the request bookkeeping (web.bookkeeping).
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.REDACTOR] = redactor or Redactor(settings.secrets())
    app[keys.SUPERVISOR] = Supervisor(app[keys.METRICS], scrub=app[keys.REDACTOR].scrub,
                                      restart_limit=settings.tasks.restart_limit,
                                      window=settings.tasks.restart_window_seconds)
    app[INFLIGHT] = InFlight()
    app[DB_REFUSALS] = db_refusals()
    app[BOOKKEEPING] = book = Bookkeeping(app)  # after logging is configured: the daemon does
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http)
    app.cleanup_ctx.append(_heartbeat)
    app.cleanup_ctx.append(_intake)
    app.cleanup_ctx.append(registry.context)
    app.cleanup_ctx.append(_jobs)
    app.cleanup_ctx.append(alerts_ctx)
    app.on_shutdown.append(_begin_stop)
    admin = settings.admin
    app[GATE] = gate = Gate(
        admin_only=[*handlers(console.routes), health.status,
                    *([health.metrics] if admin.metrics == "admin" else [])],
        public_only=[*handlers(intake.routes), *handlers(registry.routes)],
        token=admin.token.get_secret_value() if admin.token else None)
    console.setup(app, app[keys.REDACTOR])
    for table in (health.routes, intake.routes, registry.routes, console.routes):
        book.add_routes(app, table, gate.check)
    book.add_unmatched(app)  # last
    return app

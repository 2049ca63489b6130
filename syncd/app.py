"""The composition root: the aiohttp Application with every resource in a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from syncd.inbox.worker import InboxWorker, run_worker
from syncd.inbox.writer import GroupCommitter
from syncd.jobs.catalog import after_sync, build_jobs
from syncd.jobs.runner import JobRunner
from syncd.jobs.scheduler import Scheduler
from syncd.logs import Redactor
from syncd.metrics import Metrics
from syncd.registry import routes as registry
from syncd.runtime import open_database, open_http
from syncd.settings.core import Settings
from syncd.sync.neolock import neolock_client
from syncd.vendors import usage
from syncd.web import health, intake, keys
from syncd.web.alerting import alerts_ctx
from syncd.web.middleware import (
    BOOKKEEPING,
    DB_REFUSALS,
    INFLIGHT,
    Bookkeeping,
    InFlight,
    db_refusals,
    request_context,
)


async def _database(app: web.Application) -> AsyncIterator[None]:
    async with open_database(app[keys.SETTINGS], borrow=False) as db:
        app[keys.DB] = db
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
    app[intake.HOOK_SECRETS] = intake.HookSecrets(
        db, configured.get_secret_value() if configured else None)
    committer = app[intake.COMMITTER] = GroupCommitter(db)
    wakeup = app[intake.INBOX_WAKEUP] = asyncio.Event()
    task: asyncio.Task[None] | None = None
    if settings.neolock is not None:
        client = app[keys.NEOLOCK] = neolock_client(settings.neolock, app[keys.HTTP])
        worker = InboxWorker(db, client, app[keys.METRICS], scrub=app[keys.REDACTOR].scrub,
                             wakeup=wakeup)
        task = asyncio.create_task(run_worker(worker), name="inbox-worker")
    yield
    await committer.close()
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    runner = JobRunner(app[keys.DB], app[keys.METRICS], scrub=app[keys.REDACTOR].scrub)
    jobs = build_jobs(settings, app[keys.DB], app[keys.HTTP], neolock=app.get(keys.NEOLOCK))
    scheduler = Scheduler(runner, jobs, settings.jobs)
    app[keys.SCHEDULER] = scheduler
    runner.after_run = after_sync(scheduler.run_soon)  # reconcile soon after a sync wrote rows
    scheduler.start()
    yield
    await scheduler.stop(settings.server.shutdown_timeout)


async def _begin_stop(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for in-flight requests: stop new job runs now so
    # both drains share one deadline.
    if keys.SCHEDULER in app:
        app[keys.SCHEDULER].begin_stop()


def create_app(settings: Settings, redactor: Redactor | None = None) -> web.Application:
    """Build syncd's Application; resources open when a runner starts it."""
    app = web.Application(middlewares=[request_context],
                          client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.REDACTOR] = redactor or Redactor(settings.secrets())
    app[INFLIGHT] = InFlight()
    app[DB_REFUSALS] = db_refusals()
    app[BOOKKEEPING] = Bookkeeping(app)  # after logging is configured: the daemon does it first
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http)
    app.cleanup_ctx.append(_intake)
    app.cleanup_ctx.append(registry.context)
    app.cleanup_ctx.append(_jobs)
    app.cleanup_ctx.append(alerts_ctx)
    app.on_shutdown.append(_begin_stop)
    app.add_routes(health.routes)
    app.add_routes(intake.routes)
    app.add_routes(registry.routes)
    return app

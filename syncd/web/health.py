"""Liveness, readiness, metrics, status and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aiohttp import web

from syncd.db import ops
from syncd.db.migrate import discover
from syncd.db.pool import Database
from syncd.errors import DatabaseError
from syncd.jobs.status import collect_status, inbox_backlog, json_default, liveness
from syncd.sync.codelocks.jobs import K3Context
from syncd.sync.codelocks.quota import QuotaConfig, QuotaLedger, utc_now
from syncd.sync.codelocks.status import period_use, quota_status
from syncd.web import keys, openapi
from syncd.web.listeners import GATE

routes = web.RouteTableDef()


@routes.get("/healthz")
@openapi.documented("Liveness: the process answers HTTP", {200: "alive"}, tags=["operations"],
                    schemas={200: "Liveness"})
async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the process and its event loop are alive."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@openapi.documented("Readiness: database reachable, migrations current, no background task "
                    "that keeps dying",
                    {200: "ready", 503: "not ready; body says which check failed"},
                    tags=["operations"], schemas={200: "Readiness", 503: "Readiness"})
async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers, every migration is applied and no supervised task
    is down, else 503."""
    checks = await app_readiness(request.app)
    ready = all(value == "ok" for value in checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)


async def app_readiness(app: web.Application) -> dict[str, str]:
    """This process's readiness checks by name ("ok" or what is wrong): the database's and its
    background tasks'; also set as syncd_database_up and syncd_ready."""
    checks = await readiness(app[keys.DB])
    metrics = app[keys.METRICS]
    metrics.db_up.set(1 if checks["database"] == "ok" else 0)
    down = app[keys.SUPERVISOR].down()
    checks["tasks"] = "ok" if not down else "down: " + "; ".join(
        f"{name} ({why})" for name, why in sorted(down.items()))
    metrics.ready.set(1 if all(value == "ok" for value in checks.values()) else 0)
    return checks


async def readiness(db: Database) -> dict[str, str]:
    """The database's readiness checks, database and migrations: each 'ok' or why not."""
    checks: dict[str, str] = {}
    try:
        await db.ping(timeout=2.0)
        checks["database"] = "ok"
        applied = await ops.migrations_applied(db)
        expected = len(discover())
        checks["migrations"] = "ok" if applied == expected else \
            f"{expected - applied} pending"
    except DatabaseError as err:
        checks.setdefault("database", f"unavailable: {type(err).__name__}")
        checks.setdefault("migrations", "unknown")
    return checks


@routes.get("/metrics")
@openapi.documented("Prometheus metrics in text format (admin listener; also public unless "
                    "admin.metrics = \"admin\")", {200: "metrics"}, tags=["operations"],
                    content_type="text/plain; version=0.0.4")
async def metrics(request: web.Request) -> web.Response:
    """Serve the process's Prometheus metrics, database-backed gauges refreshed first."""
    await _refresh(request.app)
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@routes.get("/api/v1/status")
@openapi.documented("JSON status: replicas, jobs, their last runs, inbox, subscription, open "
                    "drift, alert deliveries, Codelocks quota, health (admin listener, or the "
                    "admin bearer token)", {200: "status"},
                    tags=["operations"], schemas={200: "Status"})
async def status(request: web.Request) -> web.Response:
    """Serve replicas, jobs, last runs and health as JSON."""
    app = request.app
    settings = app[keys.SETTINGS]
    body = await collect_status(app[keys.DB], app[keys.SCHEDULER].schedule,
                                neolock_configured=settings.neolock is not None,
                                policy=settings.status)
    if settings.codelocks is not None:  # from the ledger, as `syncd status` shows it: no call
        body["codelocks_quota"] = await quota_status(K3Context(app[keys.DB], settings.codelocks,
                                                               app[keys.HTTP]))
    return web.json_response(body, dumps=_dumps)


@routes.get("/openapi.json")
@openapi.documented("This OpenAPI 3.1 document: the routes this listener serves",
                    {200: "OpenAPI document"}, tags=["operations"])
async def openapi_json(request: web.Request) -> web.Response:
    """Serve the OpenAPI document of every route this request's listener serves."""
    gate = request.app[GATE]
    return web.json_response(openapi.build(request.app,
                                           lambda handler: gate.serves(request, handler)))


async def _refresh(app: web.Application) -> None:
    """Set the gauges that describe the database: readiness, backlog, last successes, failures in
    a row, live replicas, overdue jobs, subscription, Codelocks quota; and this process's task
    health."""
    # app_readiness judges every task too (syncd_task_up: one whose crashes aged out is up again)
    if (await app_readiness(app))["database"] != "ok":
        return  # syncd_database_up says so; the other gauges keep their last values
    metrics = app[keys.METRICS]
    db = app[keys.DB]
    try:
        backlog = await inbox_backlog(db)
        live = await liveness(db, app[keys.SCHEDULER].schedule, app[keys.SETTINGS].status,
                              dt.datetime.now(dt.UTC))
        sub = await ops.get_subscription(db, "neolock")
        await _refresh_jobs(app)
        await _refresh_quota(app)
    except DatabaseError:
        return  # lost since the readiness check: the gauges keep their last values
    metrics.inbox_pending.set(backlog.pending)
    metrics.inbox_oldest.set(backlog.oldest_seconds or 0.0)
    metrics.replicas.set(len(live.daemons_up))
    for job in live.jobs:
        if job["last_success_at"] is not None:
            metrics.job_last_success.labels(job=job["job"]).set(job["last_success_at"].timestamp())
        if job["enabled"]:
            metrics.job_overdue.labels(job=job["job"]).set(int(job["overdue_since"] is not None))
    if app[keys.SETTINGS].neolock is not None:
        metrics.set_subscription("neolock", sub.status if sub else None)


async def _refresh_jobs(app: web.Application) -> None:
    metrics = app[keys.METRICS]
    for job, failed in (await ops.failed_in_a_row(app[keys.DB])).items():
        metrics.job_failed_in_a_row.labels(job=job).set(failed)


async def _refresh_quota(app: web.Application) -> None:
    codelocks = app[keys.SETTINGS].codelocks
    if codelocks is None:
        return
    ledger = QuotaLedger(app[keys.DB], QuotaConfig.from_settings(codelocks))
    for category, (usage, projected) in (await period_use(ledger, utc_now())).items():
        app[keys.METRICS].set_quota(category, used=usage.calls, limit=usage.quota,
                                    reserve=usage.reserve, projected=projected)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default)

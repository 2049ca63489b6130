"""Liveness, readiness, metrics, status and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from syncd.db import ops
from syncd.db.migrate import discover
from syncd.db.pool import Database
from syncd.errors import DatabaseError
from syncd.status import collect_status, inbox_backlog, json_default
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
@openapi.documented("Readiness: database reachable and migrations current",
                    {200: "ready", 503: "not ready; body says which check failed"},
                    tags=["operations"], schemas={200: "Readiness", 503: "Readiness"})
async def readyz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers and every migration is applied, else 503."""
    checks = await readiness(request.app[keys.DB])
    ready = all(value == "ok" for value in checks.values())
    request.app[keys.METRICS].db_up.set(1 if checks["database"] == "ok" else 0)
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)


async def readiness(db: Database) -> dict[str, str]:
    """The readiness checks, database and migrations: each 'ok' or why not."""
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
@openapi.documented("JSON status: jobs, their last runs, health (admin listener, or the "
                    "admin bearer token)", {200: "status"},
                    tags=["operations"], schemas={200: "Status"})
async def status(request: web.Request) -> web.Response:
    """Serve jobs, last runs and health as JSON."""
    app = request.app
    body = await collect_status(app[keys.DB], app[keys.SCHEDULER].schedule,
                                neolock_configured=app[keys.SETTINGS].neolock is not None)
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
    """Set the gauges that describe the database: backlog, last successes, subscription."""
    metrics = app[keys.METRICS]
    db = app[keys.DB]
    try:
        backlog = await inbox_backlog(db)
        latest = await ops.latest_runs(db)
        sub = await ops.get_subscription(db, "neolock")
    except DatabaseError:
        return  # syncd_database_up (readiness) says so; the gauges keep their last values
    metrics.inbox_pending.set(backlog.pending)
    metrics.inbox_oldest.set(backlog.oldest_seconds or 0.0)
    for job, run in latest.items():
        if run.get("last_success_at") is not None:
            metrics.job_last_success.labels(job=job).set(run["last_success_at"].timestamp())
    if app[keys.SETTINGS].neolock is not None:
        metrics.set_subscription("neolock", sub.status if sub else None)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default)

"""OpenAPI 3.1 document built from the routes themselves: a handler documents itself.

Every operation gets an operationId (the handler's name), the `X-Request-ID` request and
response header, and a content type and schema for each response: error statuses use the one
JSON error body every route answers with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

import syncd

F = TypeVar("F", bound=Callable[..., Any])
_DOC_ATTR = "__openapi__"
JSON = "application/json"

_TIME = {"type": ["string", "null"], "format": "date-time"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object", "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                       "request_id": {"type": "string"}}},
    "Liveness": {"type": "object", "required": ["status"],
                 "properties": {"status": {"const": "ok"}}},
    "Readiness": {
        "type": "object", "required": ["status", "checks"],
        "properties": {"status": {"enum": ["ready", "not ready"]},
                       "checks": {"type": "object",
                                  "required": ["database", "migrations", "tasks"],
                                  "additionalProperties": {"type": "string"},
                                  "description": "each check: 'ok' or why not; tasks: 'down: "
                                                 "<task> (<restarts> in <window>, last: "
                                                 "<error>)' for each task that keeps dying"}}},
    "Run": {
        "type": ["object", "null"],
        "properties": {"started_at": _TIME, "finished_at": _TIME,
                       "status": {"enum": ["running", "ok", "failed"]},
                       "items": {"type": "integer"}, "requests": {"type": "integer"},
                       "error": {"type": ["string", "null"]}}},
    "Job": {
        "type": "object",
        "required": ["job", "enabled", "interval_seconds", "last_run", "last_success_at",
                     "next_run_at", "overdue_since"],
        "properties": {"job": {"type": "string"}, "enabled": {"type": "boolean"},
                       "interval_seconds": {"type": ["number", "null"]},
                       "last_run": {"$ref": "#/components/schemas/Run"},
                       "last_success_at": _TIME,
                       "next_run_at": {**_TIME, "description": "when the next start is due "
                                       "(in the past when late); null: nothing to tell from"},
                       "overdue_since": {**_TIME, "description": "set while the job is overdue "
                                         "(no start for two intervals; a planned K3 job: one "
                                         "interval past its planned run): when it was due"}}},
    "TaskHealth": {
        "type": "object", "required": ["up", "restarts", "last_error", "last_error_at"],
        "properties": {"up": {"type": "boolean", "description": "false while the task keeps "
                              "dying (tasks.restart_limit crashes in tasks.restart_window_seconds)"},
                       "restarts": {"type": "integer"},
                       "last_error": {"type": ["string", "null"]}, "last_error_at": _TIME}},
    "Replica": {
        "type": "object",
        "required": ["id", "kind", "command", "host", "pid", "version", "started_at", "beat_at",
                     "stopped_at", "interval_seconds", "state", "silent_seconds", "tasks"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "kind": {"enum": ["daemon", "once"]}, "command": {"type": "string"},
            "host": {"type": "string"}, "pid": {"type": "integer"}, "version": {"type": "string"},
            "started_at": _TIME, "beat_at": _TIME, "stopped_at": _TIME,
            "interval_seconds": {"type": "number", "description": "how often it beats"},
            "state": {"enum": ["up", "stale", "stopped"], "description": "up: beat within "
                      "status.stale_after_seconds"},
            "silent_seconds": {"type": "number", "description": "since its last beat"},
            "tasks": {"type": "object",
                      "additionalProperties": {"$ref": "#/components/schemas/TaskHealth"}}}},
    "Status": {
        "type": "object",
        "required": ["version", "checked_at", "health", "problems", "replicas", "expect_daemon",
                     "stale_after_seconds", "jobs", "failing_jobs", "overdue_jobs", "inbox",
                     "inbox_backlog", "subscriptions", "drift_open", "alert_deliveries"],
        "properties": {
            "version": {"type": "string"}, "checked_at": _TIME,
            "health": {"enum": ["ok", "degraded", "down"], "description": "down: no daemon "
                       "replica beat within stale_after_seconds (unless expect_daemon is false)"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "replicas": {"type": "array", "items": {"$ref": "#/components/schemas/Replica"},
                         "description": "replicas that beat within the last hour (but "
                                        "one-shot ones that ended normally), and the latest "
                                        "daemon"},
            "expect_daemon": {"type": "boolean"}, "stale_after_seconds": {"type": "number"},
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "failing_jobs": {"type": "array", "items": {"type": "string"}},
            "overdue_jobs": {"type": "array", "items": {"type": "string"}},
            "inbox": {"type": "object", "additionalProperties": {"type": "integer"},
                      "description": "pushed events by status"},
            "inbox_backlog": {"type": "object", "required": ["pending", "oldest_pending_seconds"],
                              "properties": {
                                  "pending": {"type": "integer"},
                                  "oldest_pending_seconds": {"type": ["number", "null"]}}},
            "subscriptions": {"type": "object", "required": ["neolock"], "properties": {
                "neolock": {"$ref": "#/components/schemas/Subscription"}}},
            "drift_open": {"type": "array", "items": {"$ref": "#/components/schemas/DriftCount"},
                           "description": "open, unsuppressed drift cases by kind and severity"},
            "alert_deliveries": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/DeliveryCount"},
                                 "description": "alert deliveries by hook and state"},
            "codelocks_quota": {"$ref": "#/components/schemas/CodelocksQuota"}}},
    "Subscription": {
        "type": ["object", "null"],
        "description": "the NeoLock push subscription syncd registered; null: none",
        "required": ["url", "status", "secret", "registered_at", "checked_at", "last_error"],
        "properties": {
            "url": {"type": "string", "description": "the registered URL, its secret shown as "
                    "<secret>"},
            "status": {"enum": ["registered", "failed", "deleted"]},
            "secret": {"enum": ["configured", "generated"], "description": "where the hook "
                       "secret comes from (neolock.webhook_secret, or generated by syncd)"},
            "registered_at": _TIME, "checked_at": _TIME,
            "last_error": {"type": ["string", "null"]}}},
    "DriftCount": {
        "type": "object", "required": ["kind", "severity", "count"],
        "properties": {"kind": {"type": "string", "description": "the drift kind, e.g. "
                                "phone_not_locked"},
                       "severity": {"enum": ["info", "warning", "critical"]},
                       "count": {"type": "integer", "minimum": 1}}},
    "DeliveryCount": {
        "type": "object", "required": ["hook", "status", "count"],
        "properties": {
            "hook": {"type": "string", "description": "the hook's name (never its URL)"},
            "status": {"enum": ["pending", "delivered", "stopped", "dead", "acknowledged"],
                       "description": "dead: gave up, a problem until redelivered or "
                       "acknowledged; acknowledged: dead, and an operator acknowledged it; "
                       "stopped: the receiver answered 410 Gone"},
            "count": {"type": "integer", "minimum": 1}}},
    "CodelocksQuota": {
        "type": "object",
        "description": "present when Codelocks is configured; read from syncd's ledger (no call)",
        "required": ["plan", "period_ends_at", "categories", "jobs", "audit_lateness_7d"],
        "properties": {
            "plan": {"type": "string"}, "period_ends_at": _TIME,
            "categories": {"type": "object", "description": "by call category (netcode, "
                           "utility)", "additionalProperties": {
                               "$ref": "#/components/schemas/QuotaCategory"}},
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/QuotaJob"}},
            "audit_lateness_7d": {
                "type": "object", "required": ["entries", "median_seconds", "max_seconds"],
                "description": "audit entries first seen in 7 days, and how long after they "
                               "happened",
                "properties": {"entries": {"type": "integer"},
                               "median_seconds": {"type": ["number", "null"]},
                               "max_seconds": {"type": ["number", "null"]}}}}},
    "QuotaCategory": {
        "type": "object",
        "required": ["period", "calls", "quota", "reserve", "operator_calls", "left_for_jobs",
                     "refused", "projected_at_pace", "projected_as_planned"],
        "properties": {
            "period": {"type": "string", "description": "the quota period, e.g. 2026-12"},
            "calls": {"type": "integer", "description": "calls counted this period"},
            "quota": {"type": "integer", "description": "the period's quota, bolt-ons included"},
            "reserve": {"type": "integer", "description": "calls kept for operators"},
            "operator_calls": {"type": "integer"},
            "left_for_jobs": {"type": "integer"},
            "refused": {"type": "integer", "description": "calls refused for want of quota"},
            "projected_at_pace": {"type": "integer"},
            "projected_as_planned": {"type": "integer"}}},
    "QuotaJob": {
        "type": "object",
        "required": ["job", "next_due_at", "interval_seconds", "runs_left_this_period",
                     "last_cost", "skip_reason"],
        "properties": {
            "job": {"type": "string"}, "next_due_at": _TIME,
            "interval_seconds": {"type": ["number", "null"], "description": "the planner's "
                                 "interval; null: no run fits in the budget"},
            "runs_left_this_period": {"type": "integer"},
            "last_cost": {"type": ["integer", "null"]},
            "skip_reason": {"type": ["string", "null"]},
            "enabled": {"type": "boolean", "description": "false: the job is disabled (its "
                        "next run is then null)"}}},
    "Stored": {"type": "object", "required": ["status"],
               "properties": {"status": {"enum": ["stored", "duplicate"]}}},
}
_REQUEST_ID = {"name": "X-Request-ID", "in": "header", "required": False,
               "description": "a request id to echo (1-64 of A-Z a-z 0-9 . _ -); else one is made",
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}}
_RESPONSE_HEADERS = {"X-Request-ID": {"description": "the request id (echoed or generated)",
                                      "schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def documented(summary: str, responses: dict[int, str | dict[str, Any]] | None = None, *,
               tags: list[str] | None = None, request_body: dict[str, Any] | None = None,
               parameters: list[dict[str, Any]] | None = None,
               schemas: dict[int, str] | None = None,
               content_type: str = JSON) -> Callable[[F], F]:
    """Attach an OpenAPI operation description to a handler.

    `schemas` names a component schema per status; error statuses default to `Error`, and
    `content_type` is that of the success responses.
    """
    def wrap(handler: F) -> F:
        described: dict[str, Any] = {}
        for code, text in (responses or {200: "OK"}).items():
            if not isinstance(text, str):  # a whole OpenAPI response object, with its schemas
                described[str(code)] = {**text, "headers": {**_RESPONSE_HEADERS,
                                                            **text.get("headers", {})}}
                continue
            name = (schemas or {}).get(code) or ("Error" if code >= 400 else None)
            ctype = JSON if code >= 400 or name else content_type
            described[str(code)] = {
                "description": text, "headers": _RESPONSE_HEADERS,
                "content": {ctype: {"schema": _ref(name) if name else
                                    {"type": "object" if ctype == JSON else "string"}}}}
        operation: dict[str, Any] = {
            "operationId": handler.__name__,
            "summary": summary,
            "parameters": [*(parameters or []), _REQUEST_ID],
            "responses": described,
        }
        if tags:
            operation["tags"] = tags
        if request_body:
            operation["requestBody"] = request_body
        setattr(handler, _DOC_ATTR, operation)
        return handler
    return wrap


def build(app: web.Application,
          served: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """The OpenAPI document for every documented route of `app` (whose handler is `served`)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        operation = getattr(route.handler, _DOC_ATTR, None)
        if operation is None or (served is not None and not served(route.handler)):
            continue
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "syncd", "version": syncd.__version__,
                 "description": "syncd's HTTP interface: health, metrics, status, vendor intake. "
                 "Every response carries X-Request-ID; every error is a JSON Error body."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": SCHEMAS},
    }

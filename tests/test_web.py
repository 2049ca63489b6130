"""The HTTP surface: health, readiness, metrics, status, OpenAPI, request ids, JSON errors."""

from __future__ import annotations

import asyncio
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import syncd
from syncd.app import create_app
from syncd.settings.core import Settings
from syncd.web import keys, openapi
from syncd.web.bookkeeping import InFlight
from tests.conftest import pg_ctl, pg_start

# /api/v1/status is an admin route: on the public listener (the test client's) it needs the token.
ADMIN_TOKEN = "admin-token-for-the-web-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]


@pytest.fixture
async def client(make_settings: Callable[..., Settings],
                 aiohttp_client: AiohttpClient) -> TestClient[web.Request, web.Application]:
    """A test client for syncd's app on a fresh migrated database."""
    return await aiohttp_client(create_app(make_settings(server={"max_body_bytes": 2048},
                                                         admin={"token": ADMIN_TOKEN})))


async def test_healthz_and_readyz_answer_ok(client: TestClient[web.Request, web.Application]) -> None:
    """Liveness is 200; readiness is 200 with every check ok on a migrated database."""
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready",
                                 "checks": {"database": "ok", "migrations": "ok", "tasks": "ok"}}


async def test_metrics_are_prometheus_text(client: TestClient[web.Request, web.Application]) -> None:
    """/metrics serves the text format, counting the requests already made."""
    await client.get("/healthz")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'syncd_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


async def test_metrics_describe_build_backlog_last_success_without_created_series(
        client: TestClient[web.Request, web.Application]) -> None:
    """/metrics has build info, inbox backlog and age, per-job last success; no `_created` series."""
    db = client.app[keys.DB]
    async with db.connection() as conn:
        await conn.execute("INSERT INTO ops.sync_runs (job, status, runner, started_at, finished_at)"
                           " VALUES ('neolock-devices', 'ok', 't', now(), "
                           "'2026-01-01T00:00:00Z')")
        await conn.execute("INSERT INTO ops.inbox (source, dedupe_key, event_type, subject, "
                           "body, received_at) VALUES ('neolock', 'k1', 'x', 's', '{}', "
                           "now() - interval '90 seconds')")
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    assert f'syncd_build_info{{python="{platform.python_version()}",version="{syncd.__version__}"}}' \
        ' 1.0' in text
    assert "syncd_inbox_pending_events 1.0" in text
    age = float(text.split("\nsyncd_inbox_oldest_pending_age_seconds ")[1].split()[0])
    assert 90 <= age < 3600
    assert 'syncd_job_last_success_timestamp_seconds{job="neolock-devices"} 1.7672256e+09' in text
    assert "syncd_http_request_duration_seconds_bucket" in text
    assert "_created" not in text


async def test_metrics_include_process_and_python_runtime_series(
        client: TestClient[web.Request, web.Application]) -> None:
    """/metrics carries the standard process_* series (this process's memory, CPU, open file
    descriptors, start time) and python_* ones (version, garbage collector), as any Python
    exporter does."""
    text = await (await client.get("/metrics")).text()
    values = {line.split(" ")[0].split("{")[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith(("process_", "python_"))}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "process_start_time_seconds", "python_info",
                 "python_gc_collections_total", "python_gc_objects_collected_total"):
        assert name in values, name
    assert values["process_resident_memory_bytes"] > 10_000_000  # a Python process with aiohttp
    assert values["process_open_fds"] >= 3
    assert f'python_info{{implementation="CPython",major="3",minor="{sys.version_info.minor}"' \
        in text


async def test_status_lists_jobs_and_their_last_runs(
        client: TestClient[web.Request, web.Application]) -> None:
    """/api/v1/status names every job with its interval and latest run."""
    body = await (await client.get("/api/v1/status", headers=ADMIN)).json()
    assert body["version"]
    jobs = {j["job"]: j for j in body["jobs"]}
    assert jobs["housekeeping"]["enabled"] is False  # disabled by the test settings
    assert body["failing_jobs"] == []


async def test_openapi_documents_every_route(client: TestClient[web.Request, web.Application]) -> None:
    """Every registered route (method and path) appears in /openapi.json."""
    doc = await (await client.get("/openapi.json", headers=ADMIN)).json()
    assert doc["openapi"].startswith("3.1")
    app = client.app
    missing = [(r.method, r.resource.canonical) for r in app.router.routes()
               if r.method != "HEAD" and r.resource is not None
               and r.resource.name != "unmatched"  # the catch-all answering 404/405: no API
               and r.method.lower() not in doc["paths"].get(r.resource.canonical, {})]
    assert missing == []
    assert {"/healthz", "/readyz", "/metrics", "/api/v1/status", "/openapi.json"} <= set(doc["paths"])


def _conforms(value: Any, schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """Where `value` breaks `schema` (required keys, types, enums, nested refs): a small checker."""
    if "$ref" in schema:
        schema = schemas[str(schema["$ref"]).rsplit("/", 1)[-1]]
    kinds = schema.get("type")
    types: dict[str, Any] = {"object": dict, "array": list, "string": str, "integer": int,
                             "number": (int, float), "boolean": bool, "null": type(None)}
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        if not isinstance(value, tuple(types[k] for k in allowed)):
            return [f"{value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{value!r} not in {schema['enum']}"]
    problems: list[str] = []
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"missing {key}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += _conforms(value[key], sub, schemas)
    if isinstance(value, list) and "items" in schema:
        for item in value:
            problems += _conforms(item, schema["items"], schemas)
    return problems


async def test_openapi_has_operation_ids_request_id_and_a_schema_for_every_response(
        client: TestClient[web.Request, web.Application]) -> None:
    """Each operation: a unique operationId, the X-Request-ID header, typed content per response
    (errors as the Error schema, but readiness and the app registry's documented envelope);
    the live status, readiness and error bodies conform to their schemas."""
    doc = await (await client.get("/openapi.json", headers=ADMIN)).json()
    schemas = doc["components"]["schemas"]
    operations = [op for methods in doc["paths"].values() for op in methods.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) and all(ids)
    for op in operations:
        assert any(p["name"] == "X-Request-ID" and p["in"] == "header" for p in op["parameters"])
        for code, response in op["responses"].items():
            assert "X-Request-ID" in response["headers"]
            (_ctype, media), = response["content"].items()
            assert media["schema"], (op["operationId"], code)
            if int(code) >= 400 and not {"app registry", "console"} & set(op.get("tags", [])):
                # readyz answers its own body; the app registry's errors carry the envelope its
                # doc prescribes (declared next to its handlers); a console page's 404 is a page
                assert media["schema"] == {"$ref": "#/components/schemas/Error"} or \
                    op["operationId"] == "readyz"
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    status_schema = doc["paths"]["/api/v1/status"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    body = await (await client.get("/api/v1/status", headers=ADMIN)).json()
    assert _conforms(body, status_schema, schemas) == []
    ready = await (await client.get("/readyz")).json()
    assert _conforms(ready, {"$ref": "#/components/schemas/Readiness"}, schemas) == []
    error = await (await client.get("/no-such-route")).json()
    assert _conforms(error, {"$ref": "#/components/schemas/Error"}, schemas) == []
    assert _conforms({"error": 1}, {"$ref": "#/components/schemas/Error"}, schemas) != []


def test_openapi_omits_undocumented_handlers() -> None:
    """An undocumented route is absent from the document, so the coverage test above can fail."""
    app = web.Application()

    async def bare(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/bare", bare)
    assert "/bare" not in openapi.build(app)["paths"]


async def test_request_id_is_echoed_or_generated(client: TestClient[web.Request, web.Application]) -> None:
    """A safe X-Request-ID is echoed; a missing or unsafe one is replaced by a generated id."""
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(resp.headers["X-Request-ID"]) == 32


async def test_errors_are_json_with_request_id(client: TestClient[web.Request, web.Application]) -> None:
    """Unknown paths and wrong methods answer JSON errors carrying the request id."""
    resp = await client.get("/nope")
    body = await resp.json()
    assert resp.status == 404 and body["status"] == 404 and body["request_id"]
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert (await resp.json())["status"] == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"} and resp.headers["X-Request-ID"]


def test_the_app_runs_no_middleware(make_settings: Callable[..., Settings]) -> None:
    """The request bookkeeping rides on each route's handler, so aiohttp builds no middleware
    chain (its cost a request was as much as the rest of a push's handling): create_app adds
    none, and every route's handler, the catch-all's included, is a wrapped one."""
    app = create_app(make_settings())
    assert tuple(app.middlewares) == ()
    assert all(hasattr(route.handler, "__wrapped__") for route in app.router.routes())


async def test_readiness_flips_when_the_database_stops_and_recovers(
        short_dir: Path, aiohttp_client: AiohttpClient) -> None:
    """With the embedded database stopped, /readyz is 503; restarted, it is 200 again, same process."""
    settings = Settings(data_dir=short_dir, server={"port": 0},
                        jobs={"housekeeping": {"enabled": False}})
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/readyz")).status == 200
    pgdata = short_dir / "postgres"
    await asyncio.to_thread(pg_ctl, pgdata, "-w", "-m", "fast", "stop")
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["database"].startswith("unavailable")
    assert (await client.get("/healthz")).status == 200  # alive, just not ready
    await asyncio.to_thread(pg_start, pgdata)
    for _ in range(50):
        resp = await client.get("/readyz")
        if resp.status == 200:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200


async def test_in_flight_requests_are_waited_for_and_the_wait_is_bounded() -> None:
    """Shutdown's wait for in-flight requests ends as soon as the last one finishes, and gives
    up (False) at its timeout while one is still running."""
    inflight = InFlight()
    assert await inflight.wait_idle(0.0) is True  # nothing in flight: at once
    inflight.count += 1  # as the bookkeeping does around a handler
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, lambda: setattr(inflight, "count", inflight.count - 1))
    started = loop.time()
    assert await inflight.wait_idle(5.0) is True
    assert loop.time() - started < 4.0  # woke when the count fell, not at the timeout
    inflight.count += 1
    assert await inflight.wait_idle(0.05) is False

"""The app device registry over real HTTP and PostgreSQL: POST /v2/device and GET /api/base/configs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from syncd.app import create_app
from syncd.db.pool import Database
from syncd.registry.validate import FIELDS
from syncd.settings.core import Settings

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], "asyncio.Future[Client]"]
EXAMPLE = {"mac_address": "A1B2C3D4E5F6", "device_os": "iOS", "device_version": "14.5",
           "device_type": "Mobile", "app_version": "2.0", "app_name": "MyApp"}
GENEROUS = {"rate_limit_per_minute": 60000, "rate_limit_burst": 1000}


@pytest.fixture
async def client(make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> Client:
    """syncd's app on a fresh migrated database, with a rate limit no test here reaches."""
    return await aiohttp_client(create_app(make_settings(registry=GENEROUS)))


async def rows(db: Database, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run a query on the test database and return plain dicts."""
    async with db.connection() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def test_the_docs_usage_example_gets_the_documented_envelope(client: Client,
                                                                   db: Database) -> None:
    """The doc's example body gets 200 and {status, timestamp, time, ip, message, data{...}}."""
    resp = await client.post("/v2/device", json=EXAMPLE)
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"status", "timestamp", "time", "ip", "message", "data"}
    assert body["status"] == 200 and body["message"] == "Success" and body["ip"] == "127.0.0.1"
    assert isinstance(body["timestamp"], int) and isinstance(body["time"], int | float)
    assert body["data"] == {"mac_address": "A1B2C3D4E5F6", "status": 1, "ban_status": 0}
    [row] = await rows(db, "SELECT * FROM report.app_devices")
    assert {k: row[k] for k in EXAMPLE} == EXAMPLE
    assert row["status"] == 1 and row["ban_status"] == 0


async def test_a_repeat_updates_the_same_row_and_history_records_only_changes(
        client: Client, db: Database) -> None:
    """Re-posting (any MAC spelling) upserts one row; only a real change adds a history row."""
    await client.post("/v2/device", json=EXAMPLE)
    await client.post("/v2/device", json=EXAMPLE)  # nothing changed: no history row
    upgraded = {**EXAMPLE, "mac_address": "a1:b2:c3:d4:e5:f6", "app_version": "2.1"}
    resp = await client.post("/v2/device", json=upgraded)
    assert (await resp.json())["data"]["mac_address"] == "A1B2C3D4E5F6"
    devices = await rows(db, "SELECT mac_address, app_version FROM report.app_devices")
    assert devices == [{"mac_address": "A1B2C3D4E5F6", "app_version": "2.1"}]
    history = await rows(db, "SELECT change, app_version, previous_app_version, "
                             "app_version_changed FROM report.app_device_history "
                             "ORDER BY changed_at, app_version")
    assert history == [
        {"change": "registered", "app_version": "2.0", "previous_app_version": None,
         "app_version_changed": False},
        {"change": "updated", "app_version": "2.1", "previous_app_version": "2.0",
         "app_version_changed": True}]


async def test_each_missing_or_empty_field_is_a_400_naming_it_and_stores_nothing(
        client: Client, db: Database) -> None:
    """For each required field, leaving it out, empty or blank answers 400 naming it; no row."""
    for name in FIELDS:
        for variant in ("missing", "", "   "):
            body = {k: v for k, v in EXAMPLE.items() if k != name}
            if variant != "missing":
                body[name] = variant
            resp = await client.post("/v2/device", json=body)
            answer = await resp.json()
            assert resp.status == 400 and answer["status"] == 400, (name, variant)
            assert answer["message"] == f"missing or empty: {name}"
            assert answer["errors"] == {name: "missing or empty"}
    resp = await client.post("/v2/device", json={})
    assert (await resp.json())["message"] == "missing or empty: " + ", ".join(FIELDS)
    assert await rows(db, "SELECT 1 FROM vendor.app_devices") == []
    assert await rows(db, "SELECT 1 FROM vendor.app_device_history") == []


async def test_form_encoded_and_multipart_bodies_register_like_json(client: Client,
                                                                    db: Database) -> None:
    """URL-encoded and multipart/form-data bodies are accepted; both upsert the same row."""
    resp = await client.post("/v2/device", data={**EXAMPLE, "mac_address": "A1-B2-C3-D4-E5-F6"})
    assert resp.status == 200, await resp.text()
    fields = [*{**EXAMPLE, "app_name": "Ünïcode app"}.items(), ("extra", "ignored")]
    resp = await client.post("/v2/device",
                             data=aiohttp.FormData(fields, default_to_multipart=True))
    assert resp.status == 200, await resp.text()
    assert await rows(db, "SELECT mac_address, app_name FROM vendor.app_devices") == [
        {"mac_address": "A1B2C3D4E5F6", "app_name": "Ünïcode app"}]


@pytest.mark.parametrize(("body", "content_type", "problem"), [
    (b"[1, 2]", "application/json", "must be a JSON object, not an array"),
    (json.dumps({**EXAMPLE, "app_version": 2.0}).encode(), "application/json",
     "app_version: must be a string, not a number"),
    (json.dumps({**EXAMPLE, "device_os": ["iOS"]}).encode(), "application/json",
     "device_os: must be a string, not an array"),
    (json.dumps({**EXAMPLE, "device_type": {"a": 1}}).encode(), "application/json",
     "device_type: must be a string, not an object"),
    (json.dumps({**EXAMPLE, "app_name": "x" * 129}).encode(), "application/json",
     "app_name: longer than 128 characters"),
    (json.dumps({**EXAMPLE, "app_name": "a\u0000b"}).encode(), "application/json",
     "app_name: contains control characters"),
    (b'{"mac_address": "A1B2C3D4E5F6", "device_os": "\\ud800"}', "application/json",
     "device_os: contains control characters or invalid Unicode"),
    (b'{"device_os": "iOS", "device_os": "Android"}', "application/json",
     "'device_os' is given more than once"),
    (b'{"device_os": "\xff\xfe"}', "application/json", "not valid UTF-8"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'{"a": NaN}', "application/json", "not valid JSON"),
    (b"[" * 3000 + b"]" * 3000, "application/json", "not valid JSON"),
    (b"mac_address=%ff%fe&device_os=iOS", "application/x-www-form-urlencoded", "UTF-8"),
    (b"app_name=a&app_name=b", "application/x-www-form-urlencoded", "more than once"),
    (json.dumps({**EXAMPLE, "mac_address": "not-a-mac"}).encode(), "application/json",
     "mac_address: not a MAC address"),
    (json.dumps({**EXAMPLE, "mac_address": "02:00:00:00:00:00"}).encode(), "application/json",
     "mac_address: a placeholder MAC"),
], ids=["array", "number", "list-field", "object-field", "too-long", "nul", "lone-surrogate",
        "duplicate-key", "bad-utf8", "broken-json", "nan", "deep-nesting", "form-bad-utf8",
        "form-duplicate", "bad-mac", "placeholder-mac"])
async def test_odd_input_is_a_400_in_the_envelope_and_stores_nothing(
        client: Client, db: Database, body: bytes, content_type: str, problem: str) -> None:
    """Malformed, mistyped, oversized or undecodable input answers 400 saying why; no row."""
    resp = await client.post("/v2/device", data=body, headers={"Content-Type": content_type})
    answer = await resp.json()
    assert resp.status == 400 and answer["status"] == 400 and answer["data"] is None
    assert problem in answer["message"]
    assert await rows(db, "SELECT 1 FROM vendor.app_devices") == []


async def test_a_body_over_the_limit_is_413(make_settings: Callable[..., Settings],
                                            aiohttp_client: AiohttpClient) -> None:
    """A body over registry.max_body_bytes is refused with 413, with or without Content-Length."""
    client = await aiohttp_client(create_app(make_settings(registry={"max_body_bytes": 512})))
    big = json.dumps({**EXAMPLE, "pad": "x" * 600}).encode()
    resp = await client.post("/v2/device", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413 and (await resp.json())["status"] == 413

    async def chunks() -> Any:
        yield big[:300]
        yield big[300:]

    resp = await client.post("/v2/device", data=chunks(),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_rate_limit_answers_429_with_retry_after(make_settings: Callable[..., Settings],
                                                       aiohttp_client: AiohttpClient) -> None:
    """Past the per-IP burst, requests get 429 with Retry-After; configs count too."""
    settings = make_settings(registry={"rate_limit_per_minute": 1, "rate_limit_burst": 2})
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/base/configs")).status == 200
    assert (await client.post("/v2/device", json=EXAMPLE)).status == 200
    resp = await client.post("/v2/device", json=EXAMPLE)
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await resp.json())["status"] == 429


async def test_configs_serve_device_management_and_disabling_turns_both_routes_off(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient,
        db: Database) -> None:
    """configs serve the configured value; registry.enabled=false serves 0 and refuses POSTs."""
    client = await aiohttp_client(create_app(make_settings(registry={"device_management": 2})))
    body = await (await client.get("/api/base/configs")).json()
    assert body["data"] == {"device_management": 2} and body["message"] == "Success"
    disabled = await aiohttp_client(create_app(make_settings(registry={"enabled": False})))
    assert (await (await disabled.get("/api/base/configs")).json())["data"] == {
        "device_management": 0}
    resp = await disabled.post("/v2/device", json=EXAMPLE)
    assert resp.status == 404 and (await resp.json())["message"] == "the device registry is disabled"
    assert await rows(db, "SELECT 1 FROM vendor.app_devices") == []


async def test_x_forwarded_for_is_honoured_only_from_trusted_proxies(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient,
        db: Database) -> None:
    """Behind a trusted proxy the client is the last untrusted X-Forwarded-For hop; else the peer."""
    headers = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 10.0.0.2"}
    untrusted = await aiohttp_client(create_app(make_settings(registry=GENEROUS)))
    resp = await untrusted.get("/api/base/configs", headers=headers)
    assert (await resp.json())["ip"] == "127.0.0.1"
    trusted = await aiohttp_client(create_app(make_settings(
        registry={**GENEROUS, "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]})))
    resp = await trusted.post("/v2/device", json=EXAMPLE, headers=headers)
    assert (await resp.json())["ip"] == "203.0.113.9"
    assert await rows(db, "SELECT host(last_ip) AS ip FROM vendor.app_devices") == [
        {"ip": "203.0.113.9"}]

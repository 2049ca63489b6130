"""`POST /v2/device` and `GET /api/base/configs`, as the app device registry doc describes them.

Every answer, errors included, has the documented envelope {status, timestamp, time, ip,
message, data}. Apps show their user an error only for `device_banned` (HTTP 403,
`code: "device_banned"`); every other failure is a status an app ignores: 400 (bad input, nothing
stored), 404 (registry disabled), 413, 429 and 503 (with Retry-After).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import hdrs, web

from syncd.db.batching import GroupCommit
from syncd.db.pool import Database
from syncd.errors import DatabaseError, DataRejected
from syncd.registry import schemas, store
from syncd.registry.limits import ClientAddress, RateLimiter
from syncd.registry.validate import Invalid, parse
from syncd.settings.service import RegistrySettings
from syncd.web import keys, openapi

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
RETRY_AFTER_UNAVAILABLE = 30  # seconds an app should wait when the database is away
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once; json.dumps() builds one a call


class Registry:
    """The registry's per-process state: settings, client addresses, rate limiter, writer."""

    def __init__(self, settings: RegistrySettings,
                 writer: GroupCommit[store.Posted, store.Seen]) -> None:
        self.settings = settings
        self.addresses = ClientAddress(settings.trusted_proxies)
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.writer = writer
        self.database_ok = True  # for logging the transition once, not every failure

    def client_ip(self, request: web.Request) -> str:
        """The client's address (X-Forwarded-For honoured only from trusted proxies)."""
        return self.addresses.resolve(request.remote,
                                      request.headers.getall(hdrs.X_FORWARDED_FOR, ()))

    def database(self, ok: bool) -> None:
        """Log when writes start failing and when they recover, once each."""
        if ok != self.database_ok:
            self.database_ok = ok
            if ok:
                log.info("registry.database_recovered")
            else:
                log.warning("registry.database_unavailable")


REGISTRY = web.AppKey("registry", Registry)


async def context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the registry's group-committing writer, drained on shutdown."""
    settings = app[keys.SETTINGS].registry
    write = functools.partial(_write, app[keys.DB], settings.last_seen_resolution_seconds)
    writer: GroupCommit[store.Posted, store.Seen] = GroupCommit(
        write, timeout=settings.database_timeout_seconds)
    app[REGISTRY] = Registry(settings, writer)
    yield
    await writer.close()


async def _write(db: Database, resolution: float, batch: list[store.Posted]) -> list[store.Seen]:
    return await store.register_batch(db, batch, resolution)


def _answer(status: int, message: str, ip: str, started: float, data: dict[str, Any] | None,
            headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    body = {"status": status, "timestamp": int(time.time()),
            "time": round(time.perf_counter() - started, 3), "ip": ip, "message": message,
            "data": data, **extra}
    return web.Response(body=_ENCODER.encode(body).encode(), status=status,
                        content_type="application/json", headers=headers)


class _TooLarge(Exception):
    pass


async def _read(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes before reading them where the length is known."""
    length = request.content_length  # parsed from the header on every access
    if length is not None and length > limit:
        raise _TooLarge
    if request.content.is_eof():  # it all came with the headers (an app's few hundred bytes)
        body = request.content.read_nowait()
        if len(body) > limit:
            raise _TooLarge
        return body
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _limited(registry: Registry, ip: str, started: float) -> web.Response | None:
    wait = registry.limiter.retry_after(ip)
    if wait == 0:
        return None
    return _answer(429, "too many requests from this address; retry later", ip, started, None,
                   headers={"Retry-After": str(wait)})


@routes.post("/v2/device")
@openapi.documented(
    "Add (or update) an app's device; the answer an app may show its user is only device_banned",
    schemas.DEVICE_RESPONSES, tags=["app registry"], request_body=schemas.REQUEST_BODY)
async def add_device(request: web.Request) -> web.Response:
    """Register or update a device by its normalised MAC; answer the documented envelope."""
    started = time.perf_counter()
    registry = request.app[REGISTRY]
    settings = registry.settings
    ip = registry.client_ip(request)
    if not settings.enabled:
        return _answer(404, "the device registry is disabled", ip, started, None)
    refused = _limited(registry, ip, started)
    if refused is not None:
        return refused
    try:
        body = await _read(request, settings.max_body_bytes)
        registration = parse(body, request.headers.get(hdrs.CONTENT_TYPE, ""),
                             settings.max_field_length)
    except _TooLarge:
        return _answer(413, f"the body is larger than {settings.max_body_bytes} bytes", ip,
                       started, None)
    except Invalid as err:
        return _answer(400, err.message, ip, started, None, errors=err.errors)
    try:  # the writer ends the wait after settings.database_timeout_seconds: TimeoutError
        seen = await registry.writer.submit(store.Posted(registration, ip))
    except DataRejected as err:  # validation should make this impossible; never a 5xx for it
        log.warning("registry.rejected", error=str(err)[:200])
        return _answer(400, "the registration could not be stored", ip, started, None,
                       errors={})
    except (DatabaseError, TimeoutError):
        registry.database(ok=False)
        return _answer(503, "temporarily unavailable; retry later", ip, started, None,
                       headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
    registry.database(ok=True)
    data = {"mac_address": seen.mac_address, "status": seen.status,
            "ban_status": 1 if seen.banned else 0}
    if seen.banned:
        return _answer(403, "device_banned", ip, started, data, code="device_banned")
    return _answer(200, "Success", ip, started, data)


@routes.get("/api/base/configs")
@openapi.documented("The registry's configuration for apps: device_management (1: enabled)",
                    schemas.CONFIGS_RESPONSES, tags=["app registry"])
async def base_configs(request: web.Request) -> web.Response:
    """Serve `device_management`: the configured value, or 0 when the registry is disabled."""
    started = time.perf_counter()
    registry = request.app[REGISTRY]
    ip = registry.client_ip(request)
    refused = _limited(registry, ip, started)
    if refused is not None:
        return refused
    value = registry.settings.device_management if registry.settings.enabled else 0
    return _answer(200, "Success", ip, started, {"device_management": value})

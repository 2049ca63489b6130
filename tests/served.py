"""syncd's app served in-process on a real socket (as `syncd run` serves it), its logs captured,
and raw-socket helpers for requests a well-behaved client library would never send."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from syncd import logs
from syncd.app import create_app
from syncd.db.pool import Database
from syncd.settings.core import Settings
from syncd.web import keys
from syncd.web import server as web_server
from syncd.web.bookkeeping import INFLIGHT
from tests.waiting import wait_for

HOOK_JOBS_OFF = {n: {"enabled": False} for n in (
    "neolock-subscription", "neolock-uploads", "neolock-devices")}


class Served:
    """syncd's app listening on a real port, with its log output captured."""

    def __init__(self, port: int, output: io.StringIO, app: web.Application,
                 site: web_server.CappedSite, admin_port: int) -> None:
        self.port = port
        self.output = output
        self.app = app
        self.site = site
        self.admin_port = admin_port

    @property
    def app_db(self) -> Database:
        """The app's database."""
        return self.app[keys.DB]

    @property
    def app_settings(self) -> Settings:
        """The app's settings."""
        return self.app[keys.SETTINGS]

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far."""
        return [json.loads(line) for line in self.output.getvalue().splitlines() if line]

    async def vanish_mid_body(self, data: bytes) -> None:
        """Send a request whose body is cut short, reset the connection (RST, a client that
        vanished) once its handler is waiting for the rest, and wait until that handler is done."""
        inflight = self.app[INFLIGHT]
        before = inflight.count
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        await writer.drain()
        await wait_for(lambda: inflight.count > before, what="the handler to wait for the body")
        writer.transport.abort()
        await wait_for(lambda: inflight.count == before, what="the handler to finish")


ServeSyncd = Callable[..., contextlib.AbstractAsyncContextManager[Served]]


@pytest.fixture
def serve_syncd(make_settings: Callable[..., Settings]) -> ServeSyncd:
    """Start syncd's app (hook secret given, NeoLock unreachable, pull jobs off) the way the
    daemon does (runner and both sites from syncd.web.server), logging JSON into a buffer.

    `sections` override settings sections (`admin={...}`, `alerts={...}`); `server` keys as keywords.
    """

    @contextlib.asynccontextmanager
    async def start(secret: str, sections: dict[str, Any] | None = None,
                    **server: Any) -> AsyncIterator[Served]:
        settings = make_settings(**{
            "neolock": {"base_url": "http://127.0.0.1:9/api", "login": "shop",
                        "password": "never-logged-password-42", "webhook_secret": secret},
            "jobs": HOOK_JOBS_OFF, "server": server, **(sections or {})})
        output = io.StringIO()
        redactor = logs.configure(fmt="json", stream=output,
                                  redactor=logs.Redactor(settings.secrets()))
        app = create_app(settings, redactor)
        runner = web_server.app_runner(app, settings.server)
        await runner.setup()
        site = web_server.site(runner, settings.server)
        admin = web_server.admin_site(runner, settings.admin)
        await site.start()
        await admin.start()
        try:
            yield Served(site.port, output, app, site, admin.port)
        finally:
            await runner.cleanup()

    return start


async def raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes; read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


def head(path: str, length: int, extra: str = "") -> bytes:
    """A POST request head."""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()

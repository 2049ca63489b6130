"""Logs at 3 a.m.: one access line per push, a job.run line per failed attempt, nothing secret."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from syncd.app import create_app
from syncd.db.pool import Database
from syncd.errors import VendorFault
from syncd.jobs.runner import JobRunner
from syncd.logs import Redactor, configure
from syncd.settings.core import Settings
from syncd.sync.base import RunContext

HOOK_SECRET = "hook-secret-for-the-access-log-9d2c41"
AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]


async def test_each_push_gets_one_access_line_with_route_status_event_id_never_the_path(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """A push logs http.access at info: route template, status, seconds, event id, request id."""
    settings = make_settings(
        neolock={"base_url": "http://127.0.0.1:9/api", "login": "shop",
                 "password": "password-long-enough", "webhook_secret": HOOK_SECRET},
        jobs={name: {"enabled": False} for name in (
            "housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")})
    out = io.StringIO()
    redactor = configure("info", "json", Redactor(settings.secrets()), stream=out)
    client = await aiohttp_client(create_app(settings, redactor))
    body = {"id": "evt-42", "event": "device.locked", "deviceUid": "uid-1"}
    resp = await client.post(f"/hooks/neolock/{HOOK_SECRET}", json=body,
                             headers={"X-Request-ID": "req-7"})
    assert resp.status == 200
    await client.get("/healthz")  # probes are logged at debug only
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    access = [line for line in lines if line["event"] == "http.access"]
    assert len(access) == 1
    line = access[0]
    assert line["route"] == "/hooks/neolock/{secret}" and line["method"] == "POST"
    assert (line["status"], line["event_id"], line["request_id"]) == (200, "evt-42", "req-7")
    assert line["seconds"] >= 0 and line["level"] == "info"
    assert HOOK_SECRET not in out.getvalue()


class FailingJob:
    """A job whose every run fails the way a vendor outage does."""

    name = "always-failing"
    default_interval = 60.0

    async def run(self, ctx: RunContext) -> None:
        """Fail."""
        raise VendorFault("neolock", "503 from the vendor")


async def test_every_failed_attempt_logs_job_run_failed_at_info(db: Database) -> None:
    """Three failures: job.failing once (warning), job.run status=failed three times (info)."""
    out = io.StringIO()
    configure("info", "json", Redactor(), stream=out)
    runner = JobRunner(db)
    for _ in range(3):
        await runner.run(FailingJob())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    runs = [line for line in lines if line["event"] == "job.run"]
    assert [(r["status"], r["level"], r["job"]) for r in runs] == \
        [("failed", "info", "always-failing")] * 3
    assert [line["level"] for line in lines if line["event"] == "job.failing"] == ["warning"]

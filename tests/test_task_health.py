"""A background task that keeps dying on real bad input is restarted, and its death shows in
/readyz, /metrics, the heartbeat row and `syncd status` (another process)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from syncd import logs
from syncd.app import create_app
from syncd.settings.core import Settings
from syncd.web import keys
from syncd.web import server as web_server

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def until(probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll the async `probe` until it returns something truthy (with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_a_deliverer_dying_on_a_bad_alert_row_is_restarted_and_reported_down(
        make_settings: Callable[..., Settings], db_dsn: str, tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    """A background task that keeps crashing inside a running app (a task of the test's own,
    started on the app's supervisor beside the deliverer, inbox worker, scheduler and heartbeat:
    syncd's own tasks now survive the bad inputs that used to kill them) is restarted, its trace
    logged once; at the second crash within the window it is down: /readyz 503 naming it and its
    error, syncd_task_up 0, and `syncd status` in another process exits 1 naming the task on this
    replica (through the heartbeat's task health)."""
    settings = make_settings(
        alerts={"hooks": [{"url": "http://127.0.0.1:9/hook", "secret": SECRET, "name": "ops",
                           "timeout_seconds": 0.1}],
                "lease_seconds": 0.2, "poll_seconds": 0.05},
        tasks={"restart_limit": 2, "restart_window_seconds": 300},
        heartbeat={"interval_seconds": 0.1, "abandon_after_seconds": 0.5})
    output = io.StringIO()
    redactor = logs.configure(fmt="json", stream=output, redactor=logs.Redactor(settings.secrets()))
    app = create_app(settings, redactor)
    runner = web_server.app_runner(app, settings.server)
    await runner.setup()
    site = web_server.site(runner, settings.server)
    await site.start()
    base = f"http://127.0.0.1:{site.port}"

    async def crashing() -> None:
        payload: object = [1, 2]  # a row that is not an object, read as one
        dict(payload)  # type: ignore[call-overload]

    probe = app[keys.SUPERVISOR].start("probe", crashing)
    try:
        async def not_ready() -> dict[str, Any] | None:
            async with session.get(f"{base}/readyz") as resp:
                body: dict[str, Any] = await resp.json()
                return body if resp.status == 503 else None

        body = await until(not_ready)
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["tasks"].startswith(
            "down: probe (2 restarts in 300s, last: TypeError: ")
        async with session.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
        assert 'syncd_task_up{task="probe"} 0.0' in metrics
        assert 'syncd_task_up{task="alert-deliverer"} 1.0' in metrics
        assert 'syncd_task_up{task="heartbeat"} 1.0' in metrics
        assert "syncd_replicas 1.0" in metrics
        assert 'syncd_task_restarts_total{task="probe"} ' in metrics
        config = tmp_path / "status.toml"
        config.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\n'
                          f'url = "{db_dsn}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "syncd", "status", "--json", "--config",
                             str(config)], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        problems = json.loads(proc.stdout)["problems"]
        assert any(p.startswith("task probe down on ") and "TypeError" in p
                   for p in problems), problems
    finally:
        await probe.stop()
        await runner.cleanup()
    lines = [json.loads(line) for line in output.getvalue().splitlines() if line]
    crashed = [line for line in lines if line["event"] == "task.crashed"]
    assert len(crashed) == 1 and crashed[0]["task"] == "probe"
    assert crashed[0]["exception"]  # the trace, once
    assert [line["task"] for line in lines if line["event"] == "task.down"] == ["probe"]

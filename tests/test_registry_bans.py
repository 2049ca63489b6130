"""Registry bans and the whole contract end to end: `syncd run`, `syncd devices`, outages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from syncd.app import create_app
from syncd.cli.main import main
from syncd.db.actions import actions_for, verify_chain
from syncd.db.pool import Database
from syncd.registry import store
from syncd.settings.core import Settings
from tests.conftest import free_port, pg_ctl, pg_start

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], "asyncio.Future[Client]"]
EXAMPLE = {"mac_address": "A1B2C3D4E5F6", "device_os": "iOS", "device_version": "14.5",
           "device_type": "Mobile", "app_version": "2.0", "app_name": "MyApp"}


def config_file(tmp_path: Path, db_dsn: str, port: int = 0) -> Path:
    """A minimal syncd.toml for the test database."""
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[server]\nport = {port}\nshutdown_timeout = 5\n[admin]\nport = 0\n'
                   '[logging]\nformat = "json"\n'
                   '[jobs.housekeeping]\nenabled = false\n')
    return cfg


def post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST JSON to /v2/device with the standard library; return the status and the answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/device", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310  (an http:// literal)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_a_banned_device_gets_device_banned_until_unbanned(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient,
        db: Database) -> None:
    """A ban (even of a never-seen MAC) answers 403 device_banned; unbanning restores 200."""
    client = await aiohttp_client(create_app(make_settings()))
    assert await store.ban(db, "A1B2C3D4E5F6", reason="fraud case 7", actor="cli:test")
    resp = await client.post("/v2/device", json={**EXAMPLE, "mac_address": "a1-b2-c3-d4-e5-f6"})
    body = await resp.json()
    assert resp.status == 403
    assert body["code"] == "device_banned" and body["message"] == "device_banned"
    assert body["data"] == {"mac_address": "A1B2C3D4E5F6", "status": 1, "ban_status": 1}
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT ban_status FROM report.app_devices") == 1
    assert await store.unban(db, "A1B2C3D4E5F6", reason="cleared", actor="cli:test")
    resp = await client.post("/v2/device", json=EXAMPLE)
    assert resp.status == 200 and (await resp.json())["data"]["ban_status"] == 0


async def test_bans_and_unbans_are_in_the_action_log_including_no_ops(db: Database) -> None:
    """ban/unban append device.ban/device.unban rows; repeating one is logged as skipped."""
    assert await store.ban(db, "A1B2C3D4E5F6", reason="r1", actor="cli:alice")
    assert not await store.ban(db, "A1B2C3D4E5F6", reason="r2", actor="cli:alice")
    assert await store.unban(db, "A1B2C3D4E5F6", reason="r3", actor="cli:bob")
    assert not await store.unban(db, "A1B2C3D4E5F6", reason="r4", actor="cli:bob")
    actions = await actions_for(db, store.subject("A1B2C3D4E5F6"))
    assert [(a.action, a.outcome, a.actor, a.detail["reason"]) for a in reversed(actions)] == [
        ("device.ban", "ok", "cli:alice", "r1"), ("device.ban", "skipped", "cli:alice", "r2"),
        ("device.unban", "ok", "cli:bob", "r3"), ("device.unban", "skipped", "cli:bob", "r4")]
    assert (await verify_chain(db)).ok


def test_devices_command_bans_shows_and_unbans(db_dsn: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd devices ban|show|unban` work by any MAC spelling; a bad MAC or no reason exits 2."""
    cfg = str(config_file(tmp_path, db_dsn))
    assert main(["--config", cfg, "devices", "show", "a1:b2:c3:d4:e5:f6"]) == 1
    assert "unknown" in capsys.readouterr().out
    assert main(["--config", cfg, "devices", "ban", "a1:b2:c3:d4:e5:f6", "--reason", "chargeback",
                 "--yes"]) == 0
    assert "A1B2C3D4E5F6: banned (not registered yet" in capsys.readouterr().out
    assert main(["--config", cfg, "devices", "show", "A1B2C3D4E5F6"]) == 0
    out = capsys.readouterr().out
    assert "BANNED since" in out and "chargeback" in out and "device.ban ok by cli:" in out
    assert main(["--config", cfg, "devices", "unban", "A1B2C3D4E5F6", "--reason", "paid"]) == 0
    assert "A1B2C3D4E5F6: unbanned" in capsys.readouterr().out
    assert main(["--config", cfg, "devices", "ban", "nope", "--reason", "x"]) == 2
    assert main(["--config", cfg, "devices", "ban", "A1B2C3D4E5F6", "--reason", " "]) == 2
    with pytest.raises(SystemExit):
        main(["--config", cfg, "devices", "ban", "A1B2C3D4E5F6"])  # --reason is required


def test_the_contract_holds_against_a_running_syncd_run(db_dsn: str, tmp_path: Path) -> None:
    """Against `syncd run`: the doc's example gets the envelope, a repeat updates the same row,
    each missing field gets its 400 with nothing stored, and a banned device gets device_banned."""
    port = free_port()
    cfg = config_file(tmp_path, db_dsn, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "syncd run not up"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/base/configs", timeout=5) as resp:
            assert json.loads(resp.read())["data"] == {"device_management": 1}
        status, body = post(port, EXAMPLE)
        assert status == 200 and body["message"] == "Success" and body["ip"] == "127.0.0.1"
        assert body["data"] == {"mac_address": "A1B2C3D4E5F6", "status": 1, "ban_status": 0}
        status, body = post(port, {**EXAMPLE, "app_version": "2.1"})
        assert status == 200
        for field in EXAMPLE:
            status, body = post(port, {**EXAMPLE, "mac_address": "0A0B0C0D0E0F",
                                                     field: ""})
            assert status == 400 and field in body["message"]
        assert main(["--config", str(cfg), "devices", "ban", "A1B2C3D4E5F6", "--reason", "t",
                     "--yes"]) == 0
        status, body = post(port, EXAMPLE)
        assert status == 403 and body["code"] == "device_banned"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output

    async def stored() -> list[tuple[str, str]]:
        db = await Database.connect(db_dsn)
        try:
            return [(r["mac_address"], r["app_version"]) for r in
                    await db.pool.fetch("SELECT mac_address, app_version FROM vendor.app_devices")]
        finally:
            await db.close()

    # One row: the 400s stored nothing; the banned device's last post (2.0) is still recorded.
    assert asyncio.run(stored()) == [("A1B2C3D4E5F6", "2.0")]


async def test_a_database_outage_is_a_retryable_503_in_the_envelope(
        short_dir: Path, aiohttp_client: AiohttpClient) -> None:
    """With the database down, registrations get 503 + Retry-After (no 500) and the outage is
    logged once; back up, 200 and one recovery line."""
    settings = Settings(data_dir=short_dir, server={"port": 0},
                        jobs={"housekeeping": {"enabled": False}},
                        registry={"database_timeout_seconds": 3})
    client = await aiohttp_client(create_app(settings))
    assert (await client.post("/v2/device", json=EXAMPLE)).status == 200
    pgdata = short_dir / "postgres"
    await asyncio.to_thread(pg_ctl, pgdata, "-w", "-m", "fast", "stop")
    with capture_logs() as logs:
        for _ in range(3):
            resp = await client.post("/v2/device", json={**EXAMPLE, "app_version": "3"})
            body = await resp.json()
            assert resp.status == 503 and body["status"] == 503 and body["data"] is None
            assert int(resp.headers["Retry-After"]) > 0
        await asyncio.to_thread(pg_start, pgdata)
        for _ in range(50):
            resp = await client.post("/v2/device", json={**EXAMPLE, "app_version": "3"})
            if resp.status == 200:
                break
            await asyncio.sleep(0.1)
    assert resp.status == 200
    events = [e["event"] for e in logs if e["event"].startswith("registry.")]
    assert events == ["registry.database_unavailable", "registry.database_recovered"]

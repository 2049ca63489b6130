"""Replicas as real processes: `syncd status` follows a real `syncd run` up and down (SIGTERM and
kill -9), a run left by a killed `sync --once` is closed by the live daemon, and status says
UNKNOWN when it cannot read its config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import free_port

# Fast enough for a test; the same rules as production (abandon >= 3 beats, stale >= 2 beats).
HEARTBEAT = "[heartbeat]\ninterval_seconds = 0.3\nabandon_after_seconds = 1.5\n"
STATUS = "[status]\nstale_after_seconds = 3\n"
CONTRACT = 60.0  # issue 20: status says down, and runs are closed, within a minute of a death


def write_config(path: Path, dsn: str, port: int, extra: str = "") -> Path:
    path.write_text(f'data_dir = "{path.parent / "data"}"\n[database]\nurl = "{dsn}"\n'
                    f'[server]\nport = {port}\nshutdown_timeout = 5\n[logging]\nformat = "json"\n'
                    f'[jobs.housekeeping]\nenabled = false\n{HEARTBEAT}{STATUS}{extra}')
    return path


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}


def spawn(config: Path, *argv: str) -> subprocess.Popen[bytes]:
    """`python -m syncd ARGV --config CONFIG`, its output in a file beside the config."""
    log = (config.parent / f"{argv[0]}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "syncd", *argv, "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env())


def status(config: Path) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON of `syncd status --json`."""
    proc = subprocess.run([sys.executable, "-m", "syncd", "status", "--json", "--timeout", "10",
                           "--config", str(config)], capture_output=True, text=True, env=env(),
                          timeout=60, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("the daemon never became ready")


@pytest.fixture
def stop_all() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test started, killed if still alive at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()
    return asyncio.run(fetch())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_status_is_ok_while_a_daemon_beats_and_down_soon_after_it_dies(
        sig: signal.Signals, db_dsn: str, tmp_path: Path,
        stop_all: list[subprocess.Popen[bytes]]) -> None:
    """`syncd status` exits 0 listing the running daemon as up; after SIGTERM (the daemon marks
    itself stopped) or kill -9 (it just stops beating) it exits 2, saying no daemon beat, within
    status.stale_after_seconds — well within the minute the contract allows."""
    port = free_port()
    config = write_config(tmp_path / "syncd.toml", db_dsn, port)
    daemon = spawn(config, "run")
    stop_all.append(daemon)
    wait_ready(port, daemon)
    code, body = status(config)
    assert code == 0, body.get("problems")
    mine = [r for r in body["replicas"] if r["pid"] == daemon.pid]
    assert [(r["kind"], r["command"], r["state"]) for r in mine] == [("daemon", "run", "up")]
    assert set(mine[0]["tasks"]) >= {"heartbeat", "scheduler", "alert-deliverer"}
    daemon.send_signal(sig)
    daemon.wait(timeout=30)
    died = time.monotonic()
    while True:
        code, body = status(config)
        if code == 2:
            break
        assert code == 0 and sig == signal.SIGKILL, (code, body.get("problems"))  # SIGTERM: at once
        assert time.monotonic() - died < CONTRACT, "status never said down"
        time.sleep(0.5)
    assert body["health"] == "down"
    assert body["problems"][0].startswith("no daemon replica (`syncd run`) beat within 3s")
    gone = next(r for r in body["replicas"] if r["pid"] == daemon.pid)
    assert gone["state"] == ("stopped" if sig == signal.SIGTERM else "stale")


def test_a_run_left_by_a_killed_sync_once_is_abandoned_by_the_live_daemon(
        db_dsn: str, tmp_path: Path, stop_all: list[subprocess.Popen[bytes]]) -> None:
    """kill -9 of `syncd sync neolock-uploads --once` mid-run (its vendor never answers): the
    run it leaves 'running' is failed as abandoned by the live daemon within a minute, not when
    the job next comes due; while it lived the CLI process was listed as a 'once' replica."""
    with socket.socket() as silent_vendor:  # accepts connections, never answers
        silent_vendor.bind(("127.0.0.1", 0))
        silent_vendor.listen(16)
        vendor = silent_vendor.getsockname()[1]
        daemon_port = free_port()
        (tmp_path / "d").mkdir()
        (tmp_path / "c").mkdir()
        daemon = spawn(write_config(tmp_path / "d" / "syncd.toml", db_dsn, daemon_port), "run")
        stop_all.append(daemon)
        wait_ready(daemon_port, daemon)
        cli_config = write_config(
            tmp_path / "c" / "syncd.toml", db_dsn, free_port(),
            f'[neolock]\nbase_url = "http://127.0.0.1:{vendor}/api"\nlogin = "shop"\n'
            'password = "a-password-long-enough"\n')
        sync = spawn(cli_config, "sync", "neolock-uploads", "--once")
        stop_all.append(sync)
        deadline = time.monotonic() + 60
        while not query(db_dsn, "SELECT 1 FROM ops.sync_runs WHERE job = 'neolock-uploads' "
                                "AND status = 'running' AND replica IS NOT NULL"):
            assert sync.poll() is None, (cli_config.parent / "sync.log").read_text()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        once = query(db_dsn, "SELECT kind, command, stopped_at FROM report.replicas WHERE pid = $1",
                     sync.pid)
        assert [(r["kind"], r["command"], r["stopped_at"]) for r in once] == [("once", "sync", None)]
        sync.kill()
        sync.wait()
        killed = time.monotonic()
        while True:
            rows = query(db_dsn, "SELECT status, error, runner FROM ops.sync_runs "
                                 "WHERE job = 'neolock-uploads'")
            if rows[0]["status"] != "running":
                break
            assert time.monotonic() - killed < CONTRACT, "the run was never abandoned"
            time.sleep(0.2)
        assert daemon.poll() is None
    assert (rows[0]["status"], rows[0]["error"]) == (
        "failed", f"abandoned: its replica ({rows[0]['runner']}) stopped beating")
    assert rows[0]["runner"].endswith(f":{sync.pid}")


@pytest.mark.parametrize("content", [None, "[server\nport = 1\n", "[status]\nstale_after_seconds = -1\n"],
                         ids=["missing", "not-toml", "bad-value"])
def test_status_exits_unknown_when_it_cannot_read_its_config(content: str | None,
                                                             tmp_path: Path) -> None:
    """A missing file, a file that is not TOML and a bad value: exit 3 (UNKNOWN: could not tell),
    not 1 (which monitoring reads as WARNING), with the config error on stderr."""
    config = tmp_path / "syncd.toml"
    if content is not None:
        config.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "syncd", "status", "--config", str(config)],
                          capture_output=True, text=True, env=env(), timeout=60, check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("config error: ") and proc.stdout == ""


def test_status_before_its_migrations_are_applied_says_it_cannot_tell(empty_db_dsn: str,
                                                                     tmp_path: Path) -> None:
    """A syncd upgraded while the schema is still the old one (no ops.replicas yet): status
    exits 3 naming the pending migration, not 2 with a database error that reads as an outage."""
    from syncd.db.migrate import discover

    older = [m for m in discover() if m.version < 13]

    async def migrate_to_before_replicas() -> None:
        conn = await asyncpg.connect(empty_db_dsn)
        try:
            await conn.execute("CREATE SCHEMA ops; CREATE TABLE ops.schema_migrations (version "
                               "integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                               "applied_at timestamptz NOT NULL DEFAULT now())")
            for migration in older:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute("INSERT INTO ops.schema_migrations (version, name, "
                                       "checksum) VALUES ($1, $2, $3)", migration.version,
                                       migration.name, migration.checksum)
        finally:
            await conn.close()

    asyncio.run(migrate_to_before_replicas())
    config = write_config(tmp_path / "syncd.toml", empty_db_dsn, free_port())
    proc = subprocess.run([sys.executable, "-m", "syncd", "status", "--config", str(config)],
                          capture_output=True, text=True, env=env(), timeout=60, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "0013_replicas.sql" in proc.stderr and "cannot tell" in proc.stderr

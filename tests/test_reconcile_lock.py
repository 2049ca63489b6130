"""`syncd reconcile --apply` and the daemon's reconcile job serialise on one lock.

Issue 19, item 3 (the lock half): four `syncd reconcile --apply` started beside an apply-mode
daemon sent 110 lock POSTs on 57 subjects, because the command took no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from syncd.app import create_app
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.settings.core import Settings
from syncd.web import server as web_server
from tests.test_remediation import plant

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COMMANDS = 4
GATE_SECONDS = 20.0  # the longest one lock POST is held back (below the client's read timeout)


class LockGate:
    """Holds each NeoLock lock POST back until the test opens the gate (or GATE_SECONDS pass),
    so the daemon's reconcile run is still in progress when the commands start; records the
    deviceUid of every lock POST the vendor received."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.open = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count, then hold, a lock POST; pass everything else through."""
        if request.method == "POST" and request.path.endswith("/clients/devices/lock"):
            self.posts.append(str((await request.json()).get("deviceUid")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.open.wait(), GATE_SECONDS)
        return await handler(request)


@pytest.fixture
async def neo() -> AsyncIterator[tuple[neosim.NeoLockSim, Running, LockGate]]:
    """A NeoLock simulator whose lock POSTs pass through a LockGate."""
    state = neosim.NeoLockSim(seed=19, devices=0, transition_delay=0.05, push_backoff=0.05)
    gate = LockGate()
    app = neosim.create_app(state)
    app.middlewares.append(gate.middleware)
    async with serve(app, prefix=neosim.BASE_PATH) as running:
        yield state, running, gate


async def reconcile_runs(db: Database) -> list[asyncpg.Record]:
    """Every run of the reconcile job, oldest first."""
    async with db.connection() as conn:
        return list(await conn.fetch("SELECT status, started_at, finished_at FROM ops.sync_runs "
                                     "WHERE job = 'reconcile' ORDER BY started_at"))


async def lock_sessions(db: Database) -> int:
    """Open syncd lock connections (one per process) on this database."""
    async with db.connection() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'syncd locks' "
            "AND datname = current_database()"))


async def test_reconcile_commands_and_the_daemon_job_never_act_together(
        db: Database, db_dsn: str, make_settings: Callable[..., Settings], tmp_path: Path,
        neo: tuple[neosim.NeoLockSim, Running, LockGate]) -> None:
    """An apply-mode daemon's reconcile run is in progress (its lock POSTs held back at the
    vendor) when four `syncd reconcile --apply` processes start: all four wait for the lock
    (their lock connections are open, their runs not started) until the daemon's run ends, then
    run one at a time. Every subject gets exactly one lock POST, and no two reconcile runs
    overlap."""
    sim, running, gate = neo
    uids = [sim.fleet.add_device(state="Enrolled").device_uid for _ in range(4)]
    for uid in uids:
        await plant(db, uid, "Enrolled", "locked")
    neolock = {"base_url": running.url, "login": sim.login, "password": sim.password}
    reconcile_conf = {"mode": "apply", "grace_seconds": 600}
    settings = make_settings(
        neolock=neolock, reconcile=reconcile_conf,
        jobs={name: {"enabled": name == "reconcile", "jitter_seconds": 0.2} for name in (
            "housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices",
            "reconcile")})
    config = tmp_path / "cli.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = {json.dumps(db_dsn)}\n'
        f'[logging]\nformat = "json"\n[neolock]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in neolock.items())
        + '[reconcile]\nmode = "apply"\ngrace_seconds = 600\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}

    app = create_app(settings)
    runner = web_server.app_runner(app, settings.server)
    await runner.setup()
    await web_server.site(runner, settings.server).start()
    commands: list[asyncio.subprocess.Process] = []
    try:
        deadline = time.monotonic() + 30
        while not gate.posts:  # the daemon's run is acting, held at its first lock POST
            assert time.monotonic() < deadline, "the daemon's reconcile run never acted"
            await asyncio.sleep(0.05)
        for _ in range(COMMANDS):
            commands.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "syncd", "--config", str(config), "reconcile", "--apply",
                "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env))
        deadline = time.monotonic() + 50
        while await lock_sessions(db) < 1 + COMMANDS:  # each command is trying for the lock
            assert time.monotonic() < deadline, "the commands never reached the lock"
            await asyncio.sleep(0.1)
        runs = await reconcile_runs(db)
        assert [r["status"] for r in runs] == ["running"]  # the daemon's; the commands wait
        gate.open.set()
        outputs = [await asyncio.wait_for(c.communicate(), 60) for c in commands]
    finally:
        gate.open.set()
        for command in commands:
            if command.returncode is None:
                command.kill()
                await command.wait()
        await runner.cleanup()
    assert [c.returncode for c in commands] == [0] * COMMANDS, \
        [err.decode()[-2000:] for _, err in outputs]
    assert sorted(gate.posts) == sorted(uids)
    runs = await reconcile_runs(db)
    assert [r["status"] for r in runs] == ["ok"] * (1 + COMMANDS)
    for before, after in itertools.pairwise(runs):
        assert after["started_at"] >= before["finished_at"], "two reconcile runs overlapped"

"""Confirmation where an action is hard to undo (issue 24 item 5): `phones lock|unlock|complete`,
`devices ban` and `drift suppress` over several cases ask on a terminal or take --yes; without a
terminal and without --yes they refuse in one line, exit 1 and send nothing; --dry-run prints
what would be sent. Each runs as the operator runs it: `python -m syncd` in a subprocess, against
the test database and a Knox Guard simulator over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from syncd.db.pool import Database
from syncd.devtools.simulators.common import Running, serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app
from syncd.jobs.runner import JobRunner, Outcome
from syncd.sync.knoxguard import KnoxDevicesJob
from syncd.vendors.knoxguard import KnoxGuardClient
from tests.test_operator_cli import cli

MAC = "A1B2C3D4E5F6"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}


def on_terminal(*argv: str, typed: str) -> subprocess.CompletedProcess[str]:
    """`python -m syncd ARGV` whose stdin is a terminal (a pty) on which `typed` was typed."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "syncd", *argv], stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        os.close(follower)
        follower = -1
        os.write(leader, typed.encode())  # kept by the terminal until syncd reads its answer
        out, err = proc.communicate(timeout=120)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def knox() -> KnoxGuardSim:
    return KnoxGuardSim(seed=8, devices=12, transition_delay=0.05)


@pytest.fixture
async def knox_run(knox: KnoxGuardSim, db: Database) -> AsyncIterator[Running]:
    """The simulator, its tenant synced into vendor.phones (where `phones` finds the provider)."""
    async with serve(create_app(knox), prefix=BASE_PATH) as running:
        async with aiohttp.ClientSession() as session:
            client = KnoxGuardClient(session, running.url, api_token=knox.api_token)
            result = await JobRunner(db).run(KnoxDevicesJob(db, client))
            assert result.outcome is Outcome.OK, result.error
        yield running


@pytest.fixture
def cfg(tmp_path: Path, db_dsn: str, knox: KnoxGuardSim, knox_run: Running) -> str:
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                    f'[knoxguard]\nbase_url = "{knox_run.url}"\napi_token = "{knox.api_token}"\n')
    return str(path)


async def _logged(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT action, outcome FROM ops.remediation_log ORDER BY seq")
    finally:
        await conn.close()
    return [(r["action"], r["outcome"]) for r in rows]


async def _open_cases(dsn: str, *subjects: str) -> list[int]:
    """Open one terminal_offline case per subject; their ids."""
    conn = await asyncpg.connect(dsn)
    try:
        return [await conn.fetchval(
            "INSERT INTO ops.drift (kind, subject, provider, severity, expected, actual, "
            "first_seen_at, last_seen_at) VALUES ('terminal_offline', $1, 'biotime', 'warning', "
            "'online', 'offline since yesterday', now(), now()) RETURNING id", s)
            for s in subjects]
    finally:
        await conn.close()


async def _suppressed(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["id"] for r in await conn.fetch(
            "SELECT id FROM ops.drift WHERE suppressed_until IS NOT NULL ORDER BY id")]
    finally:
        await conn.close()


async def test_without_a_terminal_and_without_yes_nothing_is_sent(
        cfg: str, db_dsn: str, knox: KnoxGuardSim, knox_run: Running) -> None:
    """lock, unlock, complete, ban and a suppression of two cases each refuse in one line on
    stderr naming --yes, exit 1, and change nothing: no vendor call, no action-log row, no ban,
    no suppression."""
    enrolled = knox.fleet.in_state("Enrolled")[0].device_uid
    locked = knox.fleet.in_state("Locked")[0].device_uid
    await _open_cases(db_dsn, "CJDE0001", "CJDE0002")
    listed = knox_run.counters[f"{BASE_PATH}/devices/list"].requests  # the fixture's sync
    for argv in (["phones", "lock", enrolled, "--message", "Pay"], ["phones", "unlock", locked],
                 ["phones", "complete", enrolled],
                 ["devices", "ban", MAC, "--reason", "fraud case 1"],
                 ["drift", "suppress", "--kind", "terminal_offline", "--until", "7d",
                  "--reason", "power cut"]):
        proc = await asyncio.to_thread(cli, *argv, "--config", cfg)
        lines = proc.stderr.strip().splitlines()
        assert (proc.returncode, proc.stdout) == (1, ""), (argv, proc.stderr)
        assert len(lines) == 1 and "no terminal to confirm on (pass --yes)" in lines[0], argv
        assert lines[0].startswith(f"syncd {argv[0]} {argv[1]}: ")
    for route in ("lock", "unlock", "complete"):
        assert knox_run.counters[f"{BASE_PATH}/devices/{route}"].requests == 0, route
    assert knox_run.counters[f"{BASE_PATH}/devices/list"].requests == listed  # not even a re-read
    assert await _logged(db_dsn) == []
    assert await _suppressed(db_dsn) == []
    shown = await asyncio.to_thread(cli, "devices", "show", MAC, "--config", cfg)
    assert "BANNED" not in shown.stdout


async def test_dry_run_prints_what_would_be_sent_and_sends_nothing(
        cfg: str, db_dsn: str, knox: KnoxGuardSim, knox_run: Running) -> None:
    """--dry-run names the action, device, provider and parameters, the last synced state and
    whether it allows the action; for a ban and a suppression what would change; nothing is
    sent, logged, banned or suppressed."""
    enrolled = knox.fleet.in_state("Enrolled")[0].device_uid
    pending = knox.fleet.in_state("Pending")[0].device_uid
    first, second = await _open_cases(db_dsn, "CJDE0001", "CJDE0002")
    lock = await asyncio.to_thread(cli, "phones", "lock", enrolled, "--message", "Pay today",
                                   "--tel", "+998901234567", "--dry-run", "--config", cfg)
    assert lock.returncode == 0, lock.stderr
    assert lock.stdout.splitlines() == [
        f'dry run: would send lock of {enrolled} to knoxguard (message="Pay today", '
        'tel="+998901234567")',
        "  last synced state: Enrolled (console: Active): allowed; syncd re-reads the device "
        "before it sends",
        "nothing sent"]
    refused = await asyncio.to_thread(cli, "phones", "complete", pending, "--dry-run",
                                      "--config", cfg)
    assert refused.returncode == 0, refused.stderr
    assert "last synced state: Pending (console: Pending): complete needs one of Accepted, " \
           "Blinked, Enrolled, Locked" in refused.stdout
    ban = await asyncio.to_thread(cli, "devices", "ban", MAC, "--reason", "fraud", "--dry-run",
                                  "--config", cfg)
    assert ban.returncode == 0 and ban.stdout.startswith(
        f"dry run: would ban {MAC} (not registered yet: the ban applies when it registers)")
    suppress = await asyncio.to_thread(cli, "drift", "suppress", "--kind", "terminal_offline",
                                       "--until", "7d", "--reason", "power cut", "--dry-run",
                                       "--config", cfg)
    assert suppress.returncode == 0, suppress.stderr
    lines = suppress.stdout.splitlines()
    assert lines[0].startswith("dry run: would suppress 2 case(s) until ")
    assert [line.split()[0] for line in lines[1:3]] == [str(first), str(second)]
    assert "CJDE0001" in lines[1] and lines[-1] == "nothing changed"
    assert knox_run.counters[f"{BASE_PATH}/devices/lock"].requests == 0
    assert knox_run.counters[f"{BASE_PATH}/devices/complete"].requests == 0
    assert await _logged(db_dsn) == [] and await _suppressed(db_dsn) == []


async def test_on_a_terminal_the_answer_decides(
        cfg: str, db_dsn: str, knox: KnoxGuardSim, knox_run: Running) -> None:
    """On a terminal the question goes to stderr; "n" sends nothing (exit 1, "not confirmed"),
    "y" sends the lock (logged) and suppresses both cases, each in the action log."""
    enrolled = knox.fleet.in_state("Enrolled")[0].device_uid
    await _open_cases(db_dsn, "CJDE0001", "CJDE0002")
    argv = ["phones", "lock", enrolled, "--message", "Pay", "--config", cfg]
    declined = await asyncio.to_thread(on_terminal, *argv, typed="n\n")
    assert declined.returncode == 1 and declined.stdout == ""
    assert f"Send lock of {enrolled} to knoxguard (message=\"Pay\")? [y/N] " in declined.stderr
    assert declined.stderr.rstrip().endswith("syncd phones lock: nothing sent (not confirmed)")
    assert knox_run.counters[f"{BASE_PATH}/devices/lock"].requests == 0
    accepted = await asyncio.to_thread(on_terminal, *argv, typed="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert f"{enrolled} at knoxguard: lock ok" in accepted.stdout
    assert knox_run.counters[f"{BASE_PATH}/devices/lock"].requests == 1
    suppress = await asyncio.to_thread(
        on_terminal, "drift", "suppress", "--kind", "terminal_offline", "--until", "7d",
        "--reason", "power cut", "--config", cfg, typed="yes\n")
    assert suppress.returncode == 0, suppress.stderr
    assert "Suppress 2 case(s) until " in suppress.stderr and "CJDE0002" in suppress.stderr
    assert len(await _suppressed(db_dsn)) == 2
    assert await _logged(db_dsn) == [("phone.lock", "ok"), ("drift.suppress", "ok"),
                                     ("drift.suppress", "ok")]


async def test_yes_acts_without_asking_and_one_case_needs_no_confirmation(
        cfg: str, db_dsn: str, knox: KnoxGuardSim, knox_run: Running) -> None:
    """--yes bans and suppresses without a terminal; suppressing one case by id asks nothing;
    a named case that is not open stops the command before anything is suppressed."""
    first, second = await _open_cases(db_dsn, "CJDE0001", "CJDE0002")
    ban = await asyncio.to_thread(cli, "devices", "ban", MAC, "--reason", "fraud", "--yes",
                                  "--config", cfg)
    assert ban.returncode == 0 and ban.stdout.startswith(f"{MAC}: banned"), ban.stderr
    unknown = await asyncio.to_thread(cli, "drift", "suppress", str(first), "999", "--until",
                                      "1h", "--reason", "x", "--yes", "--config", cfg)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "syncd drift suppress: case 999 is not open; nothing suppressed"
    one = await asyncio.to_thread(cli, "drift", "suppress", str(first), "--until", "1h",
                                  "--reason", "x", "--config", cfg)
    assert one.returncode == 0 and one.stdout.startswith(f"case {first} suppressed until ")
    both = await asyncio.to_thread(cli, "drift", "suppress", str(first), str(second), "--until",
                                   "2h", "--reason", "y", "--yes", "--config", cfg)
    assert both.returncode == 0 and both.stdout.count("suppressed until") == 2
    assert await _suppressed(db_dsn) == [first, second]
    assert [a for a, _ in await _logged(db_dsn)] == ["device.ban", "drift.suppress",
                                                     "drift.suppress", "drift.suppress"]

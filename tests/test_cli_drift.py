"""`syncd reconcile` and `syncd drift …` on the command line, and the reconcile-soon hook."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from syncd.cli.drift import until_time
from syncd.cli.main import main
from syncd.jobs.catalog import after_sync
from syncd.jobs.runner import Outcome, RunResult


def config(tmp_path: Path, db_dsn: str) -> str:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   '[neolock]\nbase_url = "http://127.0.0.1:9/api"\nlogin = "l"\npassword = "p"\n'
                   '[reconcile]\ngrace_seconds = 0\n')
    return str(cfg)


async def _plant(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO local.phone_contracts (device_uid, desired_state, updated_at)"
            " VALUES ('dev-1', 'locked', now() - interval '1 day');"
            "INSERT INTO vendor.phones (provider, device_uid, vendor_state, raw, first_seen_at,"
            " last_seen_at, last_changed_at) VALUES ('neolock', 'dev-1', 'Enrolled', '{}',"
            " now() - interval '1 day', now() - interval '1 day', now() - interval '1 day')")
    finally:
        await conn.close()


def test_reconcile_prints_cases_and_plan_then_drift_commands_manage_them(
        db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """reconcile opens and prints the case with its plan; suppress/show/unsuppress act on it."""
    asyncio.run(_plant(db_dsn))
    cfg = config(tmp_path, db_dsn)
    assert main(["--config", cfg, "reconcile"]) == 0
    out = capsys.readouterr().out
    assert "1 opened" in out and "phone_not_locked" in out and "dev-1" in out
    assert "phone.lock" in out
    case_id = next(line.split()[0] for line in out.splitlines() if "dev-1" in line)
    assert main(["--config", cfg, "drift", "suppress", case_id, "--until", "2d",
                 "--reason", "customer paid in cash"]) == 0
    assert main(["--config", cfg, "drift", "list"]) == 0
    assert "suppressed" in capsys.readouterr().out
    assert main(["--config", cfg, "drift", "show", case_id]) == 0
    assert "customer paid in cash" in capsys.readouterr().out
    assert main(["--config", cfg, "drift", "unsuppress", case_id]) == 0
    assert main(["--config", cfg, "drift", "suppress", "999", "--until", "1h",
                 "--reason", "x"]) == 1
    capsys.readouterr()
    assert main(["--config", cfg, "drift", "list", "--status", "suppressed"]) == 0
    assert "dev-1" not in capsys.readouterr().out


def test_until_accepts_durations_and_iso_times_and_refuses_the_past() -> None:
    """--until takes 12h / 7d or an ISO time (UTC when it has no offset); the past is refused."""
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert until_time("12h", now) == now + dt.timedelta(hours=12)
    assert until_time("2026-12-31T18:00", now) == dt.datetime(2026, 12, 31, 18, tzinfo=dt.UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        until_time("2020-01-01T00:00Z", now)
    with pytest.raises(argparse.ArgumentTypeError):
        until_time("soon", now)


def test_a_sync_run_that_wrote_rows_asks_for_a_reconcile() -> None:
    """The runner hook brings reconcile forward after a sync with items, never after itself."""
    asked: list[str] = []
    hook = after_sync(asked.append)
    hook(RunResult("neolock-devices", Outcome.OK, items=3))
    hook(RunResult("neolock-devices", Outcome.OK, items=0))
    hook(RunResult("biotime-terminals", Outcome.SKIPPED))
    hook(RunResult("reconcile", Outcome.OK, items=5))
    assert asked == ["reconcile"]


async def test_run_soon_brings_a_scheduled_job_forward() -> None:
    """A job scheduled hourly runs again promptly when run_soon names it."""
    from syncd.jobs.scheduler import Scheduler
    from syncd.settings.service import JobSettings
    from syncd.sync.base import RunContext

    runs: list[int] = []

    class Counting:
        name = "reconcile"
        default_interval = 3600.0

        async def run(self, ctx: RunContext) -> None:
            runs.append(1)

    class DirectRunner:  # runs the job without a database: only the scheduling is under test
        async def run(self, job: Counting) -> None:
            await job.run(RunContext(db=None, job=job.name))  # type: ignore[arg-type]

    scheduler = Scheduler(DirectRunner(), {"reconcile": Counting()},  # type: ignore[arg-type]
                          {"reconcile": JobSettings(jitter_seconds=0)})
    scheduler.start()
    try:
        for _ in range(100):  # the first run, soon after start
            if runs:
                break
            await asyncio.sleep(0.05)
        scheduler.run_soon("reconcile")
        scheduler.run_soon("no-such-job")  # not scheduled: nothing happens
        for _ in range(100):
            if len(runs) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop(1.0)
    assert len(runs) == 2


async def _plant_long_case(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO ops.drift (kind, subject, provider, severity, expected, actual, "
            "first_seen_at, last_seen_at) VALUES ('terminal_differs', 'CJDE193560021', 'biotime', "
            "'warning', 'alias Warehouse north gate entrance (area Tashkent-Chilonzor-7)', "
            "'alias Склад, северные ворота — временный терминал для инвентаризации', now(), now())")
    finally:
        await conn.close()


def test_drift_list_wraps_long_values_and_cuts_no_word(
        db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`drift list` wraps a long expected/actual value onto more lines at word boundaries: every
    word of it appears whole, the heading stays one line, and continuation lines keep the
    columns (the ID column is blank on them)."""
    asyncio.run(_plant_long_case(db_dsn))
    cfg = config(tmp_path, db_dsn)
    assert main(["--config", cfg, "drift", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "SEVERITY", "KIND", "SUBJECT", "EXPECTED",
                                "ACTUAL", "PLAN"]
    assert len(lines) > 2 and all(line.startswith(" " * 6) for line in lines[2:])
    words = set(" ".join(lines[1:]).split())
    for text in ("alias Warehouse north gate entrance (area Tashkent-Chilonzor-7)",
                 "alias Склад, северные ворота — временный терминал для инвентаризации"):
        assert set(text.split()) <= words, text
    expected = "alias Warehouse north gate entrance (area Tashkent-Chilonzor-7)"
    expected_at, actual_at = lines[0].index("EXPECTED"), lines[0].index("ACTUAL")
    column = " ".join(line[expected_at:actual_at].strip() for line in lines[1:])
    assert column.split() == expected.split()

"""Terminal commands by serial number, through the service and the CLI, recorded in the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from syncd.actions.terminals import TerminalCommand, send_command
from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.devtools.simulators.biotime import BASE_PATH, BioTimeSim, create_app
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.vendors import BioTimeSettings
from syncd.sync.biotime import BioTimeTerminalsJob, biotime_client
from syncd.vendors.biotime import BioTimeClient
from syncd.vendors.pacing import RetryPolicy

FAST = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def sim() -> BioTimeSim:
    """A seeded BioTime server with 6 terminals."""
    return BioTimeSim(seed=7, terminals=6)


@pytest.fixture
async def running(sim: BioTimeSim) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    async with serve(create_app(sim), prefix=BASE_PATH) as served:
        yield served


@pytest.fixture
async def client(running: Running, sim: BioTimeSim) -> AsyncIterator[BioTimeClient]:
    """A JWT client of the simulator (fast retries)."""
    settings = BioTimeSettings(base_url=running.url, username=sim.username,
                               password=sim.password)
    async with aiohttp.ClientSession() as session:
        yield biotime_client(settings, session, retry=FAST)


@pytest.fixture
async def synced(db: Database, client: BioTimeClient, running: Running, sim: BioTimeSim) -> None:
    """vendor.terminals filled by one biotime-terminals run."""
    settings = BioTimeSettings(base_url=running.url, token=sim.api_token)
    result = await JobRunner(db).run(BioTimeTerminalsJob(db, client, settings))
    assert result.outcome is Outcome.OK, result.error


@pytest.mark.usefixtures("synced")
async def test_commands_are_sent_and_recorded_with_their_outcome(
        db: Database, client: BioTimeClient, sim: BioTimeSim) -> None:
    """A listed terminal's reboot is sent and recorded ok; an unlisted serial number and a
    terminal the server no longer has are recorded failed with the reason."""
    good, vanished = sim.known_terminals()[:2]
    del sim.terminals[vanished.id]
    outcomes = await send_command(db, client, TerminalCommand.REBOOT,
                                  [good.sn, "NO-SUCH-SN", vanished.sn, good.sn],
                                  requested_by="test")
    assert [(o.sn, o.ok) for o in outcomes] == [(good.sn, True), ("NO-SUCH-SN", False),
                                                (vanished.sn, False)]
    assert [c.action for c in sim.commands_for(good.sn)] == ["reboot"]
    async with db.connection() as conn:
        ledger = await conn.fetch("SELECT sn, terminal_id, command, outcome, error, requested_by, "
                                  "finished_at FROM report.terminal_commands ORDER BY id")
    assert [(r["sn"], r["command"], r["outcome"]) for r in ledger] == [
        (good.sn, "reboot", "ok"), ("NO-SUCH-SN", "reboot", "failed"),
        (vanished.sn, "reboot", "failed")]
    assert ledger[0]["terminal_id"] == good.id and ledger[0]["error"] is None
    assert ledger[1]["terminal_id"] is None and "not a terminal" in ledger[1]["error"]
    assert "do not exist" in ledger[2]["error"]
    assert all(r["requested_by"] == "test" and r["finished_at"] for r in ledger)


@pytest.mark.usefixtures("synced")
async def test_a_command_the_server_refuses_is_recorded_failed(
        db: Database, client: BioTimeClient, sim: BioTimeSim) -> None:
    """With the licence gate closed, the command fails and the ledger says why."""
    sim.set_licensed(False)
    [outcome] = await send_command(db, client, TerminalCommand.CLEAR_COMMAND,
                                   [sim.known_terminals()[0].sn], requested_by="test")
    assert not outcome.ok and outcome.error is not None and "licence" in outcome.error.lower()
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT outcome FROM ops.terminal_commands") == "failed"
    assert sim.commands == []


@pytest.mark.usefixtures("synced")
async def test_terminal_commands_from_the_cli(
        db: Database, db_dsn: str, running: Running, sim: BioTimeSim, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd terminals upload-transactions|upload-all|clear-commands SN…` reach the terminal, are
    recorded, and the exit code says whether all succeeded; clear-commands is sent only once
    confirmed (--yes here: tests have no terminal to answer a prompt)."""
    sn = sim.known_terminals()[0].sn
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[biotime]\nbase_url = "{running.url}"\ntoken = "{sim.api_token}"\n')
    assert await asyncio.to_thread(
        main, ["--config", str(cfg), "terminals", "clear-commands", sn]) == 1  # not confirmed
    for action in ("upload-transactions", "upload-all", "clear-commands"):
        assert await asyncio.to_thread(
            main, ["--config", str(cfg), "terminals", action, sn, "--yes"]) == 0
    assert await asyncio.to_thread(main, ["--config", str(cfg), "terminals", "reboot", "BOGUS"]) == 1
    out = capsys.readouterr().out
    assert f"{sn}: upload_all ok" in out and "BOGUS: reboot failed: not a terminal" in out
    assert [c.action for c in sim.commands_for(sn)] == ["upload_transaction", "upload_all",
                                                       "clear_command"]
    async with db.connection() as conn:
        outcomes = [r["outcome"] for r in await conn.fetch(
            "SELECT outcome FROM ops.terminal_commands ORDER BY id")]
    assert outcomes == ["ok", "ok", "ok", "failed"]


def test_commands_need_biotime_configured(db_dsn: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Without a [biotime] section, a terminal command exits 2 and says why."""
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n')
    assert main(["--config", str(cfg), "terminals", "reboot", "SN1"]) == 2
    assert "BioTime is not configured" in capsys.readouterr().err

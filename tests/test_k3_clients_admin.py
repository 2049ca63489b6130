"""`syncd k3 clients add|suspend|unsuspend|delete`: cost shown, billed to the operator reserve,
re-read into vendor.k3_clients, logged; refused before any call when it cannot go."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pty
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from syncd.actions.k3clients import K3ClientError, active_periods, change, parse_days
from syncd.cli.main import main
from syncd.db.actions import verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner
from syncd.reconcile.rules.k3 import k3_findings
from tests.clocks import Clock
from tests.k3_env import k3_context, k3_jobs, k3_settings


@pytest.fixture
def sim() -> CodelocksSim:
    """A Business 1 tenant (1000 Utility calls, 200 kept for operators) with 4 locks."""
    return CodelocksSim(seed=5, locks=4)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


@pytest.fixture
async def cfg(db: Database, db_dsn: str, sim: CodelocksSim, running: Running,
              tmp_path: Path) -> Path:
    """A config for the simulator, with locks and clients synced (by the scheduled jobs)."""
    async with aiohttp.ClientSession() as http:
        jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http,
                                  Clock(dt.datetime.now(dt.UTC))))
        for name in ("k3-locks", "k3-clients"):
            await JobRunner(db).run(jobs[name])
    keys = ", ".join(f'"{k}"' for k in sim.access_keys)
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                    f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                    f'access_keys = [{keys}]\nrate_limit = 1000.0\n')
    return path


async def k3(cfg: Path, *args: str) -> int:
    """Run `syncd k3 clients …` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, ["--config", str(cfg), "k3", "clients", *args])


def lock_with_status(sim: CodelocksSim, status: str) -> tuple[str, str]:
    """(lock id, email) of a client with `status`."""
    return next((lock_id, c.email) for lock_id, clients in sim.clients.items()
                for c in clients.values() if c.status == status)


async def ledger(db: Database) -> tuple[int, int]:
    """(calls, operator_calls) of this period's Utility ledger."""
    row = await db.pool.fetchrow("SELECT coalesce(sum(calls), 0) AS calls, "
                                 "coalesce(sum(operator_calls), 0) AS ops FROM report.api_usage "
                                 "WHERE vendor = 'codelocks' AND category = 'utility'")
    assert row is not None
    return int(row["calls"]), int(row["ops"])


async def test_suspend_shows_its_cost_then_suspends_rereads_and_logs(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """With --yes: the cost (1 call to suspend, 1 to re-read) and the reserve left are printed,
    the client is SUSPENDED at the vendor and in report.k3_clients at once, both calls are billed
    to the operator (the vendor counted the same), and the action log has the change by cli:<user>
    without the access key."""
    lock_id, email = lock_with_status(sim, "ACTIVE")
    calls_before, _ = await ledger(db)
    capsys.readouterr()
    assert await k3(cfg, "suspend", lock_id, email, "--yes") == 0
    out = capsys.readouterr().out
    period = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert "cost: 2 Utility calls (1 to suspend, 1 to re-read the lock's clients)" in out
    assert f"operator reserve left for {period}: 200 of 200 Utility calls" in out
    assert f"suspended {email} on lock {lock_id}" in out and f"{email} listed SUSPENDED" in out
    assert sim.clients[lock_id][email].status == "SUSPENDED"
    status = await db.pool.fetchval("SELECT status FROM report.k3_clients WHERE lock_id = $1 AND "
                                    "email = $2", lock_id, email)
    assert status == "SUSPENDED"
    calls, operator_calls = await ledger(db)
    assert (calls - calls_before, operator_calls) == (2, 2)
    assert sim.quota_used(UTILITY) == calls
    [row] = await db.pool.fetch("SELECT actor, action, subject, outcome, detail FROM "
                                "report.actions WHERE action LIKE 'k3.client.%'")
    assert (row["action"], row["subject"], row["outcome"]) == (
        "k3.client.suspend", f"k3:{lock_id}/{email}", "ok")
    assert row["actor"].startswith("cli")
    assert row["detail"]["status_before"] == "ACTIVE" and row["detail"]["calls"] == 2
    assert row["detail"]["reread"] == {"clients": len(sim.clients[lock_id]),
                                       "status": "SUSPENDED"}
    assert not any(key in str(dict(row)) or key in out for key in sim.access_keys)
    assert (await verify_chain(db)).ok
    assert await k3(cfg, "unsuspend", lock_id, email, "--yes") == 0
    assert sim.clients[lock_id][email].status == "ACTIVE"


async def test_add_invites_with_the_periods_asked_and_delete_clears_the_drift(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """`add --hours --days` invites with slot 0 open those hours on those days (the re-read lists
    the client PENDING, an unexpected client: drift); `delete` removes it and the drift rules see
    it gone at once, without waiting for k3-clients."""
    lock_id = next(iter(sim.locks))
    email = "staff3@example.com"  # a registered K3 Connect user
    assert await k3(cfg, "add", lock_id, email, "--hours", "08:00-18:00", "--days", "mon-fri",
                    "--message", "Welcome (stock room)", "--yes") == 0
    out = capsys.readouterr().out
    assert "active periods: slot 0 08:00-18:00 mon,tue,wed,thu,fri" in out
    slot = sim.clients[lock_id][email].active_periods["0"]
    assert (slot["starts"], slot["ends"], slot["fri"], slot["sat"]) == ("08:00", "18:00", True,
                                                                        False)
    subject = f"{lock_id}/{email}"

    async def unexpected() -> list[str]:
        findings = await k3_findings(db, dt.datetime.now(dt.UTC), battery_levels=(),
                                     silent_for=dt.timedelta(days=3650))
        return [f.subject for f in findings if f.kind == "k3_client_unexpected"]

    assert subject in await unexpected()
    assert await k3(cfg, "delete", lock_id, email, "--yes") == 0
    assert email not in sim.clients[lock_id]
    assert subject not in await unexpected()
    actions = await db.pool.fetch("SELECT action, outcome FROM report.actions ORDER BY seq")
    assert [(a["action"], a["outcome"]) for a in actions] == [("k3.client.add", "ok"),
                                                              ("k3.client.delete", "ok")]


async def test_the_vendors_refusal_is_logged_and_costs_only_its_call(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """Inviting an address that is not a K3 Connect user: Codelocks answers an error in a 200;
    exit 1, the reason printed, one call spent (no re-read), logged as refused."""
    lock_id = next(iter(sim.locks))
    calls_before, _ = await ledger(db)
    assert await k3(cfg, "add", lock_id, "stranger@example.com", "--yes") == 1
    out = capsys.readouterr().out
    assert "refused" in out and "ClientNotRegistered" in out
    calls, _ = await ledger(db)
    assert calls - calls_before == 1
    outcome = await db.pool.fetchval("SELECT outcome FROM report.actions "
                                     "WHERE action = 'k3.client.add'")
    assert outcome == "refused"


async def test_dry_run_and_an_unconfirmed_change_send_nothing(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run prints the request (the access key not shown) and its cost; without --yes and
    without a terminal to ask on, nothing is sent (exit 1). Neither spends a call or logs."""
    lock_id, email = lock_with_status(sim, "ACTIVE")
    used = sim.quota_used(UTILITY)
    capsys.readouterr()
    assert await k3(cfg, "delete", lock_id, email, "--dry-run") == 0
    out = capsys.readouterr().out
    assert (f"request: DELETE {sim_url(cfg)}/u/1/k3connect/{lock_id}/client "
            f"accesskey=<the lock's access key> clientemail={email}") in out
    assert "nothing sent (--dry-run)" in out
    assert await k3(cfg, "delete", lock_id, email) == 1
    assert "nothing sent: no terminal to confirm on (pass --yes)" in capsys.readouterr().err
    assert sim.quota_used(UTILITY) == used and email in sim.clients[lock_id]
    assert await db.pool.fetchval("SELECT count(*) FROM report.actions") == 0


def sim_url(cfg: Path) -> str:
    """The simulator's base URL as the config file names it."""
    line = next(x for x in cfg.read_text().splitlines() if x.startswith("base_url"))
    return line.split('"')[1].rstrip("/")


@pytest.mark.parametrize(("args", "problem"), [
    (["suspend", "0605ffff", "a@example.com"], "is not known to syncd"),
    (["suspend", "LOCK!", "a@example.com"], "K3Connect lock id"),
    (["suspend", "{lock}", "not-an-email"], "is not an e-mail address"),
    (["add", "{lock}", "a@example.com", "--hours", "18:00-08:00"], "--hours"),
    (["add", "{lock}", "a@example.com", "--days", "fri-mon"], "runs forward"),
    (["add", "{lock}", "a@example.com", "--message", "Hi! <b>"], "message:"),
    (["add", "{lock}", "a@example.com", "--periods", "{periods}"], "slot '10'"),
])
async def test_a_change_that_cannot_go_is_refused_before_any_call(
        db: Database, cfg: Path, sim: CodelocksSim, tmp_path: Path, args: list[str],
        problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown lock, a bad id, address, hours, days, message or periods file: exit 2 with the
    reason and "no call was made"; the vendor sees nothing."""
    periods = tmp_path / "periods.json"
    periods.write_text('{"10": {"enabled": true}}')
    lock_id = next(iter(sim.locks))
    used = sim.quota_used(UTILITY)
    argv = [a.format(lock=lock_id, periods=periods) for a in args]
    assert await k3(cfg, *argv, "--yes") == 2
    err = capsys.readouterr().err
    assert problem in err and "(no call was made)" in err
    assert sim.quota_used(UTILITY) == used


async def test_the_reserve_is_the_operators_and_an_empty_quota_refuses_before_any_call(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """With the jobs' budget used up (800 of 1000), a change still goes, from the reserve, and
    the reserve left is shown; with the whole quota used, it is refused with no call."""
    period = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    await db.pool.execute("UPDATE ops.api_usage SET calls = 800 WHERE vendor = 'codelocks' "
                          "AND category = 'utility' AND period = $1", period)
    lock_id, email = lock_with_status(sim, "ACTIVE")
    capsys.readouterr()
    assert await k3(cfg, "suspend", lock_id, email, "--yes") == 0
    assert "operator reserve left" in capsys.readouterr().out
    assert sim.clients[lock_id][email].status == "SUSPENDED"
    assert await ledger(db) == (802, 2)
    await db.pool.execute("UPDATE ops.api_usage SET calls = quota WHERE vendor = 'codelocks' "
                          "AND category = 'utility' AND period = $1", period)
    used = sim.quota_used(UTILITY)
    assert await k3(cfg, "unsuspend", lock_id, email, "--yes") == 2
    assert "no Utility calls left" in capsys.readouterr().err
    assert sim.quota_used(UTILITY) == used


async def test_on_a_terminal_the_change_waits_for_yes(
        db: Database, cfg: Path, sim: CodelocksSim) -> None:
    """Run as an operator would (a real terminal on stdin): "n" sends nothing, "y" suspends."""
    lock_id, email = lock_with_status(sim, "ACTIVE")

    async def answer(reply: str) -> tuple[int, str]:
        leader, follower = pty.openpty()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncd", "--config", str(cfg), "k3", "clients", "suspend",
            lock_id, email, stdin=follower, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")})
        os.close(follower)
        os.write(leader, f"{reply}\n".encode())
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        os.close(leader)
        return proc.returncode or 0, out.decode()

    code, out = await answer("n")
    assert code == 1 and "Suspend now, spending 2 Utility calls? [y/N]" in out
    assert sim.clients[lock_id][email].status == "ACTIVE"
    code, out = await answer("y")
    assert code == 0, out
    assert sim.clients[lock_id][email].status == "SUSPENDED"


def test_periods_and_days_follow_the_documented_shape() -> None:
    """--hours/--days fill slot 0 and disable slots 1-9; day lists and ranges parse; a change is
    checked before anything is sent."""
    periods = active_periods("07:30-19:00", "sat,sun")
    assert sorted(periods) == [str(i) for i in range(10)]
    assert periods["0"] == {"enabled": True, "starts": "07:30", "ends": "19:00", "mon": False,
                            "tue": False, "wed": False, "thu": False, "fri": False, "sat": True,
                            "sun": True}
    assert not any(periods[str(i)]["enabled"] for i in range(1, 10))
    assert parse_days("mon-wed,fri") == ["mon", "tue", "wed", "fri"]
    assert parse_days("all") == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    added = change("add", "0605ab", "a@example.com", access_type="one_time")
    assert (added.access_type, added.message) == ("ONE_TIME", "Access granted")
    assert added.form()["accesstype"] == "ONE_TIME" and "accesskey" not in added.form()
    assert change("suspend", "0605ab", "a@example.com").form() == {
        "clientemail": "a@example.com", "action": "SUSPEND"}
    with pytest.raises(K3ClientError, match="access type"):
        change("add", "0605ab", "a@example.com", access_type="ADMIN")

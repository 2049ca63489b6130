"""`syncd netcode issue`: validated before any call, recorded in the ledger, repeats cost nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from syncd.actions.netcodes import (
    NetCodeLedger,
    NetCodeRequestError,
    check_start,
    lock_zone,
    validate,
)
from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import NETCODE, UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.codelocks_state import netcode_digits
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner
from tests.clocks import Clock
from tests.k3_env import k3_context, k3_jobs, k3_settings

# A day comfortably ahead (a start in the past is refused before any call), whatever today is.
AHEAD = dt.date.today() + dt.timedelta(days=400)
DAY = AHEAD.isoformat()


@pytest.fixture
def sim() -> CodelocksSim:
    """A tenant with 3 locks on the real clock."""
    return CodelocksSim(seed=3, locks=3)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


@pytest.fixture
async def cfg(db: Database, db_dsn: str, sim: CodelocksSim, running: Running,
              tmp_path: Path) -> Path:
    """A config for the simulator, with the locks already synced."""
    async with aiohttp.ClientSession() as http:
        jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http,
                                  Clock(dt.datetime.now(dt.UTC))))
        await JobRunner(db).run(jobs["k3-locks"])
    keys = ", ".join(f'"{k}"' for k in sim.access_keys)
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                    f'[codelocks]\nbase_url = "{running.url}"\napi_key = "{sim.api_key}"\n'
                    f'access_keys = [{keys}]\n')
    return path


async def netcode(cfg: Path, *args: str) -> int:
    """Run `syncd netcode …` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, ["--config", str(cfg), "netcode", *args])


async def test_a_repeat_is_answered_from_the_ledger_with_zero_calls(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """The first issue asks Codelocks (one NetCode call); the same parameters again print the same
    code from the ledger without a call. The code is never stored in clear, and both requests are
    in the action log as cli:<user>."""
    lock = next(iter(sim.locks.values()))
    args = ["issue", "--lock", lock.lock_id, "--start", f"{DAY} 00:00", "--duration", "2d",
            "--json"]
    capsys.readouterr()
    assert await netcode(cfg, *args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = netcode_digits(lock.lock_id, dt.datetime.combine(AHEAD, dt.time()), 13, "K3CONNECT",
                              lock.access_key)
    assert first["code"] == expected and first["from_ledger"] is False
    assert first["expires"] == f"{AHEAD + dt.timedelta(days=2)} 00:00:00"
    assert sim.quota_used(NETCODE) == 1
    utility_before = sim.quota_used(UTILITY)
    assert await netcode(cfg, *args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["code"] == expected and second["from_ledger"] is True
    assert sim.quota_used(NETCODE) == 1 and sim.quota_used(UTILITY) == utility_before
    async with db.connection() as conn:
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM ops.netcodes t")
        report = await conn.fetch("SELECT * FROM report.netcodes")
        actions = await conn.fetch("SELECT actor, action, outcome, detail FROM report.actions "
                                   "ORDER BY at")
        ledger = await conn.fetchrow("SELECT calls, operator_calls FROM report.api_usage "
                                     "WHERE category = 'netcode'")
    assert expected not in dump and lock.access_key not in dump
    assert [(r["lock_id"], r["duration_id"], r["repeats"]) for r in report] == [
        (lock.lock_id, 13, 1)]
    assert [(a["action"], a["outcome"], a["detail"]["ledger"]) for a in actions] == [
        ("netcode.issue", "ok", "miss"), ("netcode.issue", "ok", "hit")]
    assert all(a["actor"].startswith("cli") for a in actions)
    assert expected not in str([dict(a) for a in actions])
    assert ledger is not None and (ledger["calls"], ledger["operator_calls"]) == (1, 1)


@pytest.mark.parametrize(("start", "duration", "problem"), [
    (f"{DAY} 10:30", "3h", "on the hour"),
    (f"{DAY} 10:00", "1d", "at midnight"),
    (f"{DAY} 00:00", "19", "duration id 19"),
    ("05/01/2027 00:00", "1", "yyyy-MM-dd"),
])
async def test_invalid_requests_are_refused_before_any_call(
        cfg: Path, sim: CodelocksSim, start: str, duration: str, problem: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An hour code off the hour, a day code after midnight, an unknown duration or a bad date
    exits 2 with a clear reason, and no call is spent."""
    lock_id = next(iter(sim.locks))
    capsys.readouterr()
    code = await netcode(cfg, "issue", "--lock", lock_id, "--start", start, "--duration", duration)
    assert code == 2
    assert problem in capsys.readouterr().err
    assert sim.quota_used(NETCODE) == 0


async def test_kitlock_netcode_needs_timecode_and_identifier_and_is_ledgered(
        cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """A KitLock NetCode uses the initialisation timecode and identifier; a repeat is free."""
    args = ["issue", "--model", "KL1060C2", "--lock", "202011161623", "--identifier", "451254",
            "--start", f"{DAY} 16:00", "--duration", "4"]
    capsys.readouterr()
    assert await netcode(cfg, *args) == 0
    assert await netcode(cfg, *args) == 0
    out = capsys.readouterr().out
    code = netcode_digits("202011161623", dt.datetime.combine(AHEAD, dt.time(16)), 4, "KL1060C2", "451254")
    assert out.count(code) == 2 and "no call made" in out
    assert sim.quota_used(NETCODE) == 1


def test_validation_rules() -> None:
    """Durations by hours and days map to the documented ids; KitLock needs an identifier."""
    assert validate("0605ab", f"{DAY} 13:00", "12h").duration_id == 11
    assert validate("0605ab", f"{DAY} 00:00", "7d").duration_id == 18
    assert validate("0605ab", f"{DAY} 00:00", "7d").expires == \
        dt.datetime.combine(AHEAD + dt.timedelta(days=7), dt.time())
    with pytest.raises(NetCodeRequestError, match="identifier"):
        validate("202011161623", f"{DAY} 13:00", "0", "KL1060")
    with pytest.raises(NetCodeRequestError, match="lock model"):
        validate("0605ab", f"{DAY} 13:00", "0", "NOPE")


async def test_a_netcode_past_the_quota_is_refused_without_a_call_and_logged(
        db: Database, cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """With the month's NetCode quota used up in the ledger, issuing exits 1, sends nothing, and
    the action log records the refusal."""
    async with db.connection() as conn:
        period = dt.datetime.now(dt.UTC).strftime("%Y-%m")
        await conn.execute("INSERT INTO ops.api_usage (vendor, category, period, calls, quota) "
                           "VALUES ('codelocks', 'netcode', $1, 100, 100)", period)
    lock_id = next(iter(sim.locks))
    code = await netcode(cfg, "issue", "--lock", lock_id, "--start", f"{DAY} 10:00",
                         "--duration", "1h")
    assert code == 1
    assert "quota is used up" in capsys.readouterr().err
    assert sim.quota_used(NETCODE) == 0
    async with db.connection() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM report.actions "
                                      "WHERE action = 'netcode.issue'")
    assert outcome == "refused"


async def test_a_start_in_the_past_is_refused_before_any_call(
        cfg: Path, sim: CodelocksSim, capsys: pytest.CaptureFixture[str]) -> None:
    """Two hours before the current hour in the lock's time: exit 2, one line naming the lock's
    time and zone, "(no call was made)", and no NetCode call spent."""
    lock = next(iter(sim.locks.values()))
    zone = ZoneInfo(lock.timezone[0])
    start = dt.datetime.now(zone).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    capsys.readouterr()
    code = await netcode(cfg, "issue", "--lock", lock.lock_id, "--start",
                         start.strftime("%Y-%m-%d %H:%M"), "--duration", "1h")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in the past for lock" in err
    assert lock.timezone[0] in err and err.strip().endswith("(no call was made)")
    assert sim.quota_used(NETCODE) == 0


async def test_the_earliest_start_is_the_current_hour_or_today_in_the_locks_zone(
        db: Database, cfg: Path, sim: CodelocksSim, running: Running) -> None:
    """At 04:20 UTC: the Tashkent lock (09:20 there) takes 09:00 but not 08:00 or 05:00; the
    London lock takes 05:00; day codes start today at 00:00, not yesterday; a KitLock (zone
    unknown) is read at UTC-12, so only a start past everywhere is refused. A code issued before
    is answered from the ledger even once its start has passed; new parameters then are not."""
    tashkent, london = (next(lk for lk in sim.locks.values() if lk.timezone[0] == name)
                        for name in ("Asia/Tashkent", "Europe/London"))
    clock = Clock(dt.datetime(2026, 12, 7, 4, 20, tzinfo=dt.UTC))
    async with aiohttp.ClientSession() as http:
        ledger = NetCodeLedger(k3_context(db, k3_settings(sim, running), http, clock))

        async def issue(lock: str, start: str, duration: str, model: str = "K3CONNECT",
                        identifier: str | None = None) -> bool:
            issued = await ledger.issue(validate(lock, start, duration, model, identifier),
                                        "cli:tester")
            return issued.from_ledger

        assert await issue(tashkent.lock_id, "2026-12-07 09:00", "1h") is False
        assert await issue(tashkent.lock_id, "2026-12-07 00:00", "1d") is False
        assert await issue(london.lock_id, "2026-12-07 05:00", "1h") is False
        for start, duration, text in (
                ("2026-12-07 08:00", "1h", "an hour code can start at the current hour (09:00)"),
                ("2026-12-07 05:00", "1h", "its time now: 2026-12-07 09:20, Asia/Tashkent"),
                ("2026-12-06 00:00", "1d", "a day code can start today at 00:00")):
            with pytest.raises(NetCodeRequestError, match=re.escape(text)):
                await issue(tashkent.lock_id, start, duration)
        kitlock = ("202011161623", "KL1060", "451254")
        assert await issue(kitlock[0], "2026-12-06 16:00", "1h", *kitlock[1:]) is False
        with pytest.raises(NetCodeRequestError, match="UTC-12: the lock's zone is not known"):
            await issue(kitlock[0], "2026-12-06 15:00", "1h", *kitlock[1:])
        calls = sim.quota_used(NETCODE)
        clock.advance(hours=3)
        assert await issue(tashkent.lock_id, "2026-12-07 09:00", "1h") is True
        with pytest.raises(NetCodeRequestError, match="in the past"):
            await issue(tashkent.lock_id, "2026-12-07 09:00", "2h")
    assert sim.quota_used(NETCODE) == calls == 4


def test_the_locks_zone_is_read_from_its_name_else_its_offset() -> None:
    """An IANA name wins; else a TimezoneOffset such as +05:30 or -3; else UTC-12 (lenient)."""
    now = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    zone, label = lock_zone("Europe/London", "+00:00")
    assert (now.astimezone(zone).hour, label) == (13, "Europe/London")  # summer time
    zone, label = lock_zone("Not/AZone", "+05:30")
    assert (now.astimezone(zone).strftime("%H:%M"), label) == ("17:30", "UTC+05:30")
    assert lock_zone(None, "-3")[1] == "UTC-03:00"
    zone, label = lock_zone(None, "soon")
    assert now.astimezone(zone).hour == 0 and label.startswith("UTC-12")
    request = validate("0605ab", "2026-07-01 13:00", "1h")
    check_start(request, now, *lock_zone("Europe/London", None))  # the current hour there
    with pytest.raises(NetCodeRequestError, match="in the past"):
        check_start(request, now, *lock_zone("Asia/Tashkent", None))

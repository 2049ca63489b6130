"""biotime-terminals and terminal commands, against the BioTime simulator and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.devtools.simulators.biotime import BASE_PATH, BioTimeSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.jobs.runner import JobRunner, Outcome, RunResult
from syncd.settings.vendors import BioTimeSettings
from syncd.sync.biotime import BioTimeTerminalsJob, biotime_client
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

FAST = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)
TERMINALS_ROUTE = "/iclock/api/terminals/"
LOGIN_ROUTE = "/jwt-api-token-auth/"
ZONE = "Asia/Tashkent"


class PageHooks:
    """Per-page behaviour of the terminal listing: fail a page, or act after serving one."""

    def __init__(self) -> None:
        self.fail: set[int] = set()
        self.after: dict[int, Callable[[], None]] = {}

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Apply the hooks of the requested listing page."""
        page = int(request.query.get("page", "1")) if request.path == TERMINALS_ROUTE else 0
        if page in self.fail:
            return web.json_response({"detail": "Internal Server Error"}, status=500)
        response: web.StreamResponse = await handler(request)
        if page in self.after:
            self.after.pop(page)()
        return response


@pytest.fixture
def clock() -> Clock:
    """The simulator's clock: frozen at the (whole) second the test starts, moved only by it."""
    return Clock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def sim(clock: Clock) -> BioTimeSim:
    """A seeded BioTime server in Tashkent with 11 terminals (2 unknown), links on an internal host."""
    return BioTimeSim(seed=5, terminals=11, timezone=ZONE, internal_host="biotime.corp:8081",
                      now=clock.now)


@pytest.fixture
def hooks() -> PageHooks:
    """Page hooks installed in the simulator."""
    return PageHooks()


@pytest.fixture
async def running(sim: BioTimeSim, hooks: PageHooks) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    app = create_app(sim)
    app.middlewares.append(hooks.middleware)
    async with serve(app, prefix=BASE_PATH) as served:
        yield served


def biotime_settings(running: Running, sim: BioTimeSim, **overrides: Any) -> BioTimeSettings:
    """[biotime] for the simulator, paging 4 terminals at a time."""
    values: dict[str, Any] = {"base_url": running.url, "username": sim.username,
                              "password": sim.password, "timezone": ZONE, "page_size": 4}
    return BioTimeSettings(**(values | overrides))


@pytest.fixture
def make_job(db: Database, running: Running, sim: BioTimeSim,
             session: aiohttp.ClientSession) -> Callable[..., BioTimeTerminalsJob]:
    """Build the biotime-terminals job (fast retries) with optional [biotime] overrides."""

    def build(**overrides: Any) -> BioTimeTerminalsJob:
        settings = biotime_settings(running, sim, **overrides)
        return BioTimeTerminalsJob(db, biotime_client(settings, session, retry=FAST), settings)

    return build


async def expect(db: Database, sim: BioTimeSim) -> None:
    """Record the simulator's known terminals in local.terminals, as the business would."""
    async with db.connection() as conn:
        await conn.executemany("INSERT INTO local.terminals (sn, alias) VALUES ($1, $2)",
                               [(t.sn, t.alias) for t in sim.known_terminals()])


async def report(db: Database) -> dict[str, dict[str, Any]]:
    """report.terminals by serial number."""
    async with db.connection() as conn:
        return {r["sn"]: dict(r) for r in await conn.fetch("SELECT * FROM report.terminals")}


async def snapshot(db: Database) -> list[tuple[Any, ...]]:
    """Every vendor.terminals row with its row version (xmin changes on any write)."""
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT sn, xmin::text AS v, last_seen_at, last_changed_at, gone_at "
                                "FROM vendor.terminals ORDER BY sn")
    return [tuple(r.values()) for r in rows]


def sim_status(sim: BioTimeSim, sn: str) -> str:
    """The status report.terminals should show for a simulated terminal."""
    terminal = sim.terminal_by_sn(sn)
    assert terminal is not None
    if not terminal.known:
        return "unknown"
    return "ok" if terminal.online and terminal.stale_since is None else "offline"


async def run(db: Database, job: BioTimeTerminalsJob) -> RunResult:
    """Run the job through the runner, as the scheduler does."""
    return await JobRunner(db).run(job)


async def test_sync_once_from_the_cli_fills_report_terminals(
        db: Database, db_dsn: str, running: Running, sim: BioTimeSim, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd sync biotime-terminals --once` stores every terminal with state, online and expected,
    and `syncd terminals list` prints them; unknown and expected-but-missing terminals show so."""
    await expect(db, sim)
    async with db.connection() as conn:
        await conn.execute("INSERT INTO local.terminals (sn, alias) VALUES ('NEVER-SEEN-1', 'Lost')")
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[biotime]\nbase_url = "{running.url}"\nusername = "{sim.username}"\n'
                   f'password = "{sim.password}"\ntimezone = "{ZONE}"\npage_size = 4\n')
    code = await asyncio.to_thread(main, ["--config", str(cfg), "sync", "biotime-terminals",
                                          "--once"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "biotime-terminals: ok items=11" in out
    rows = await report(db)
    assert set(rows) == {t.sn for t in sim.terminals.values()} | {"NEVER-SEEN-1"}
    for terminal in sim.terminals.values():
        row = rows[terminal.sn]
        assert row["status"] == sim_status(sim, terminal.sn), terminal
        assert row["state"] == (1 if terminal.online else 2)
        assert row["online"] is (terminal.online and terminal.stale_since is None)
        assert row["expected"] is terminal.known
        assert row["alias"] == terminal.alias and row["ip_address"] == terminal.ip_address
        assert row["area_name"] == sim.areas[terminal.area_id].name
        assert row["last_seen_at"] is not None and row["gone_at"] is None
    assert {r["status"] for r in rows.values()} >= {"ok", "offline", "unknown", "missing"}
    missing = rows["NEVER-SEEN-1"]
    assert (missing["expected"], missing["status"], missing["online"]) == (True, "missing", False)
    assert missing["alias"] is None and missing["state"] is None and missing["last_seen_at"] is None

    code = await asyncio.to_thread(main, ["--config", str(cfg), "terminals", "list"])
    listed = capsys.readouterr().out
    assert code == 0
    for sn, row in rows.items():
        line = next(line for line in listed.splitlines() if line.startswith(sn))
        assert line.rstrip().endswith(row["status"])


async def test_next_links_on_an_internal_host_are_followed_by_query(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], running: Running,
        sim: BioTimeSim) -> None:
    """The listing's `next` names the server's internal host; all 3 pages still arrive."""
    result = await run(db, make_job())
    assert result.outcome is Outcome.OK and result.items == 11
    assert running.counters[TERMINALS_ROUTE].requests == 3
    assert result.requests == 4  # one login, three pages
    assert set(await report(db)) == {t.sn for t in sim.terminals.values()}


async def test_numbers_sent_as_strings_are_stored_as_numbers(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim) -> None:
    """`"state": "1"` is stored as state 1 and counts as online; "2" as offline."""
    for terminal in sim.terminals.values():
        terminal.string_numbers = True
    assert (await run(db, make_job())).outcome is Outcome.OK
    rows = await report(db)
    for terminal in sim.terminals.values():
        assert rows[terminal.sn]["state"] == (1 if terminal.online else 2)
        assert rows[terminal.sn]["online"] is (terminal.online and terminal.stale_since is None)


async def test_a_token_expiring_mid_listing_is_renewed_and_the_listing_completes(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], running: Running,
        sim: BioTimeSim, clock: Clock, hooks: PageHooks) -> None:
    """After page 1 the server's clock passes the JWT's exp: one 401, one new login, all stored."""

    def expire() -> None:
        clock.advance(seconds=sim.token_lifetime + 60)

    hooks.after[1] = expire
    result = await run(db, make_job())
    assert result.outcome is Outcome.OK, result.error
    assert running.counters[LOGIN_ROUTE].requests == 2
    assert running.counters[TERMINALS_ROUTE].requests == 4  # page 2 was refused once
    assert len(await report(db)) == 11


async def test_licence_gate_fails_the_run_clearly_and_changes_nothing(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim) -> None:
    """A 403 from the licence gate fails the run naming the licence; stored rows stay untouched."""
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    before = await snapshot(db)
    sim.set_licensed(False)
    result = await run(db, job)
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "licence" in result.error.lower()
    assert await snapshot(db) == before


async def test_an_html_page_with_200_is_a_clear_error(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], running: Running) -> None:
    """A base_url that reaches the web UI fails the run saying so, and writes nothing."""
    result = await run(db, make_job(base_url=running.url + "/ui"))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "base_url does not point at a BioTime API" in result.error
    assert await snapshot(db) == []


async def test_a_failed_page_mid_listing_marks_nothing_gone_and_writes_nothing(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim,
        hooks: PageHooks) -> None:
    """Page 2 answers 500 (after retries): the run fails, no row is written, none is marked gone."""
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    before = await snapshot(db)
    del sim.terminals[max(sim.terminals)]  # a complete listing would now mark it gone
    sim.set_offline(sim.known_terminals()[0].sn)  # and would update this one
    hooks.fail.add(2)
    result = await run(db, job)
    assert result.outcome is Outcome.FAILED and "500" in (result.error or "")
    assert await snapshot(db) == before


async def test_a_listing_giving_one_serial_number_to_two_terminals_is_refused(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim) -> None:
    """Two ids with the same serial number make the listing invalid: the run fails, nothing written."""
    first, second = sorted(sim.terminals)[:2]
    sim.terminals[second].sn = sim.terminals[first].sn
    result = await run(db, make_job())
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "serial number" in result.error
    assert await snapshot(db) == []


async def test_a_terminal_removed_from_a_complete_listing_is_marked_gone(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim) -> None:
    """A deleted terminal is marked gone: 'missing' if the business expects it, else 'gone'."""
    await expect(db, sim)
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    known, unknown = sim.known_terminals()[2], sim.unknown_terminals()[0]
    del sim.terminals[known.id]
    del sim.terminals[unknown.id]
    assert (await run(db, job)).outcome is Outcome.OK
    rows = await report(db)
    assert rows[known.sn]["gone_at"] is not None and rows[known.sn]["status"] == "missing"
    assert rows[unknown.sn]["gone_at"] is not None and rows[unknown.sn]["status"] == "gone"
    assert not rows[known.sn]["online"] and not rows[unknown.sn]["online"]
    assert sum(r["gone_at"] is not None for r in rows.values()) == 2
    sim.add_terminal(sn=known.sn, alias=known.alias, ip_address=known.ip_address)
    assert (await run(db, job)).outcome is Outcome.OK  # registered again, under a new id
    assert (await report(db))[known.sn]["gone_at"] is None


async def test_a_row_skipped_by_shifted_pages_is_not_marked_gone(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], running: Running,
        sim: BioTimeSim, hooks: PageHooks) -> None:
    """A terminal deleted while page 1 is read shifts page 2 by one; the skipped terminal is
    confirmed by GET and kept, and the deleted one goes only on the next run."""
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    ids = sorted(sim.terminals)
    skipped = sim.terminals[ids[4]].sn  # first of page 2, which moves onto page 1
    deleted = sim.terminals[ids[0]].sn

    def delete_first() -> None:
        del sim.terminals[ids[0]]

    hooks.after[1] = delete_first
    assert (await run(db, job)).outcome is Outcome.OK
    rows = await report(db)
    assert rows[skipped]["gone_at"] is None and rows[deleted]["gone_at"] is None
    assert running.counters[r"/iclock/api/terminals/{id}/"].requests == 1
    assert (await run(db, job)).outcome is Outcome.OK
    assert (await report(db))[deleted]["gone_at"] is not None


async def test_a_vanished_terminal_that_cannot_be_checked_fails_the_run_and_changes_nothing(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], running: Running,
        sim: BioTimeSim) -> None:
    """If the GET that would confirm a terminal is gone fails, the run fails and writes nothing."""
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    before = await snapshot(db)
    del sim.terminals[min(sim.terminals)]
    running.faults.set("/iclock/api/terminals/{id}/", FaultSpec(error_rate=1.0))
    result = await run(db, job)
    assert result.outcome is Outcome.FAILED and "500" in (result.error or "")
    assert await snapshot(db) == before


async def test_offline_means_state_not_1_or_a_stale_last_activity_within_the_configured_window(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim) -> None:
    """State 2 is offline; state 1 with activity 20 min old is offline under a 10 min window and
    online under a 1 h one (the window is configuration, and the view follows it)."""
    await expect(db, sim)
    off, stale, on = (t.sn for t in sim.known_terminals()[:3])
    sim.set_offline(off, since=dt.timedelta(minutes=1))
    sim.set_stale(stale, since=dt.timedelta(minutes=20))
    sim.set_online(on)
    assert (await run(db, make_job(online_window_seconds=600))).outcome is Outcome.OK
    rows = await report(db)
    assert [rows[sn]["status"] for sn in (off, stale, on)] == ["offline", "offline", "ok"]
    assert rows[stale]["state"] == 1
    assert (await run(db, make_job(online_window_seconds=3600))).outcome is Outcome.OK
    rows = await report(db)
    assert [rows[sn]["status"] for sn in (off, stale, on)] == ["offline", "ok", "ok"]


async def test_a_naive_tashkent_time_is_stored_as_the_right_instant(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob], sim: BioTimeSim,
        clock: Clock) -> None:
    """A zone-less last_activity in Tashkent local time (UTC+5) is stored as the same instant."""
    sn = sim.known_terminals()[0].sn
    sim.set_offline(sn, since=dt.timedelta(hours=3))
    assert (await run(db, make_job())).outcome is Outcome.OK
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT last_activity, raw->>'last_activity' AS sent "
                                  "FROM vendor.terminals WHERE sn = $1", sn)
    assert row is not None
    instant = clock.now() - dt.timedelta(hours=3)
    assert row["last_activity"] == instant
    assert row["sent"] == (instant + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S")


async def test_a_resync_without_changes_writes_no_rows(
        db: Database, make_job: Callable[..., BioTimeTerminalsJob]) -> None:
    """With nothing changed at the server, the second run inserts, updates and marks gone nothing."""
    job = make_job()
    assert (await run(db, job)).outcome is Outcome.OK
    before = await snapshot(db)
    with capture_logs() as logs:
        assert (await run(db, job)).outcome is Outcome.OK
    line = next(e for e in logs if e["event"] == "biotime.terminals")
    assert (line["inserted"], line["updated"], line["gone"], line["listed"]) == (0, 0, 0, 11)
    assert await snapshot(db) == before

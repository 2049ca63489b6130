"""biotime-punches: punches by id with a lookback, each batch committed with its cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.db.biotime import punch_cursor
from syncd.db.pool import Database
from syncd.devtools.simulators.biotime import BASE_PATH, BioTimeSim, create_app
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner, Outcome, RunResult
from syncd.settings.vendors import BioTimeSettings
from syncd.sync.biotime import BioTimePunchesJob, biotime_client
from syncd.vendors.pacing import RetryPolicy

FAST = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02)
TRANSACTIONS_ROUTE = "/iclock/api/transactions/"


class FailPages:
    """Answers 500 for the listed pages of the transactions listing."""

    def __init__(self) -> None:
        self.pages: set[int] = set()

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Fail the request if it asks for one of the failing pages."""
        if request.path == TRANSACTIONS_ROUTE and int(request.query.get("page", "1")) in self.pages:
            return web.json_response({"detail": "Internal Server Error"}, status=500)
        response: web.StreamResponse = await handler(request)
        return response


@pytest.fixture
def sim() -> BioTimeSim:
    """A seeded BioTime server in Tashkent with 6 terminals and their punches."""
    return BioTimeSim(seed=9, terminals=6, timezone="Asia/Tashkent")


@pytest.fixture
def failing() -> FailPages:
    """Pages of the transactions listing that answer 500."""
    return FailPages()


@pytest.fixture
async def running(sim: BioTimeSim, failing: FailPages) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    app = create_app(sim)
    app.middlewares.append(failing.middleware)
    async with serve(app, prefix=BASE_PATH) as served:
        yield served


@pytest.fixture
async def make_job(db: Database, running: Running,
                   sim: BioTimeSim) -> AsyncIterator[Callable[..., BioTimePunchesJob]]:
    """Build the biotime-punches job, paging 10 punches at a time."""
    settings = BioTimeSettings(base_url=running.url, username=sim.username, password=sim.password,
                               timezone="Asia/Tashkent", page_size=10)
    async with aiohttp.ClientSession() as session:

        def build(**options: Any) -> BioTimePunchesJob:
            return BioTimePunchesJob(db, biotime_client(settings, session, retry=FAST), settings,
                                     **options)

        yield build


async def run(db: Database, job: BioTimePunchesJob) -> RunResult:
    """Run the job through the runner."""
    return await JobRunner(db).run(job)


async def stored_ids(db: Database) -> list[int]:
    """Ids in vendor.punches, ascending."""
    async with db.connection() as conn:
        return [r["id"] for r in await conn.fetch("SELECT id FROM vendor.punches ORDER BY id")]


async def test_punches_are_read_incrementally_and_late_uploads_are_caught(
        db: Database, make_job: Callable[..., BioTimePunchesJob], sim: BioTimeSim) -> None:
    """The first run stores every punch; the next reads only the last `lookback_ids` ids again
    plus new ones, including punches made 30 h ago that a terminal uploaded only now."""
    job = make_job(lookback_ids=5)
    first = await run(db, job)
    assert first.outcome is Outcome.OK and first.items == len(sim.transactions)
    assert await stored_ids(db) == [t.id for t in sim.transactions]
    assert await punch_cursor(db) == len(sim.transactions)
    sn = sim.known_terminals()[0].sn
    late = sim.upload_late(sn, count=3, age=dt.timedelta(hours=30))
    second = await run(db, job)
    assert second.outcome is Outcome.OK and second.items == 5 + 3
    assert await punch_cursor(db) == late[-1].id
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT id, punch_time, upload_delay, expected_terminal "
                                "FROM report.punches WHERE id = ANY($1::bigint[]) ORDER BY id",
                                [p.id for p in late])
    assert [r["punch_time"] for r in rows] == [p.punch_time for p in late]  # right instant
    assert all(r["upload_delay"] > dt.timedelta(hours=29) for r in rows)
    assert not any(r["expected_terminal"] for r in rows)  # local.terminals is empty here


async def test_a_failed_page_keeps_committed_batches_and_the_next_run_resumes(
        db: Database, make_job: Callable[..., BioTimePunchesJob], sim: BioTimeSim,
        failing: FailPages) -> None:
    """Page 3 fails: pages 1–2 stay stored with their cursor; the next run fills in the rest."""
    job = make_job(lookback_ids=0)
    failing.pages.add(3)
    result = await run(db, job)
    assert result.outcome is Outcome.FAILED and result.items == 20
    assert await stored_ids(db) == [t.id for t in sim.transactions[:20]]
    assert await punch_cursor(db) == 20
    failing.pages.clear()
    assert (await run(db, job)).outcome is Outcome.OK
    assert await stored_ids(db) == [t.id for t in sim.transactions]


async def test_a_rerun_with_no_new_punches_writes_nothing(
        db: Database, make_job: Callable[..., BioTimePunchesJob]) -> None:
    """Punches re-read through the lookback are not written again."""
    job = make_job(lookback_ids=1000)
    assert (await run(db, job)).outcome is Outcome.OK
    async with db.connection() as conn:
        before = await conn.fetch("SELECT id, xmin::text FROM vendor.punches ORDER BY id")
        assert (await run(db, job)).outcome is Outcome.OK
        assert await conn.fetch("SELECT id, xmin::text FROM vendor.punches ORDER BY id") == before

"""neolock-uploads in bulk: large pages with a remembered fallback, pages fetched ahead and
committed in groups with their cursor, crash-safe under kill -9, and pages validated at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from syncd.sync.neolock_uploads import NeoLockUploadsJob
from syncd.vendors.neolock.client import NeoLockClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DATA = ("device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model", "upload_status",
        "status", "raw")


def uploads_query(request: web.Request) -> tuple[int, int] | None:
    """(pageNum, pageSize) of an uploads listing request, None for other requests."""
    if request.method != "GET" or not request.path.endswith("/clients/devices/uploads"):
        return None
    return int(request.query.get("pageNum", 0)), int(request.query.get("pageSize", 100))


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running, list[tuple[int, int]]]]:
    """A simulator with 1,000 uploaded devices that refuses pages of more than 200 rows with the
    gateway's 400 (a stricter vendor than the simulator); every listing request is recorded."""
    state = neosim.NeoLockSim(seed=11, devices=1000)
    seen: list[tuple[int, int]] = []

    @web.middleware
    async def strict_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
        query = uploads_query(request)
        if query is not None:
            seen.append(query)
            if query[1] > 200:
                return web.json_response({"code": 400, "message": "Invalid request: pageSize",
                                          "error": "BAD_REQUEST", "path": "/api"}, status=400)
        return await handler(request)

    app = neosim.create_app(state)
    app.middlewares.insert(0, strict_pages)
    async with serve(app, prefix=neosim.BASE_PATH) as running:
        yield state, running, seen


async def table(db: Database) -> list[tuple[object, ...]]:
    async with db.connection() as conn:
        rows = await conn.fetch(f"SELECT {', '.join(DATA)} FROM vendor.phone_uploads "
                                "ORDER BY device_uid, upload_id")
    return [tuple(r) for r in rows]


async def test_refused_page_sizes_step_down_and_are_remembered(
        db: Database, sim: tuple[neosim.NeoLockSim, Running, list[tuple[int, int]]]) -> None:
    """A vendor refusing 1,000 and 500 rows a page is read at 200; the next run asks for 200 at
    once, and every upload row is stored."""
    state, running, seen = sim
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        job = NeoLockUploadsJob(db, client)
        assert (await JobRunner(db).run(job)).outcome is Outcome.OK
        assert seen[:3] == [(0, 1000), (0, 500), (0, 200)]
        cursor = await db.fetchval("cursor_get", job.name)
        assert cursor == {"next_page": 0, "page_size": 200, "refused_page_size": 500,
                          "listed": True}
        seen.clear()
        assert (await JobRunner(db).run(job)).outcome is Outcome.OK
    assert seen and all(size == 200 for _, size in seen)
    assert len(await table(db)) == 1000


async def test_a_page_with_one_bad_row_fails_alone_and_keeps_the_pages_before(
        db: Database) -> None:
    """A row without a deviceUid on page 3 makes the run fail with a clear error naming the
    field; the pages before it are stored with their cursor, nothing of page 3 is, and a later
    run resumes from page 3."""
    state = neosim.NeoLockSim(seed=12, devices=500)
    broken = {"on": True}

    @web.middleware
    async def bad_row(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        query = uploads_query(request)
        if broken["on"] and query is not None and query[0] == 3:
            assert isinstance(response, web.Response) and response.body is not None
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            del body["data"][7]["deviceUid"]
            return web.json_response(body)
        return response

    app = neosim.create_app(state)
    app.middlewares.insert(0, bad_row)
    async with serve(app, prefix=neosim.BASE_PATH) as running, \
            aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        job = NeoLockUploadsJob(db, client, page_size=100, commit_pages=2)
        first = await JobRunner(db).run(job)
        assert first.outcome is Outcome.FAILED
        assert first.error is not None and "7.deviceUid" in first.error
        assert len(await table(db)) == 300
        assert (await db.fetchval("cursor_get", job.name))["next_page"] == 3
        broken["on"] = False
        assert (await JobRunner(db).run(job)).outcome is Outcome.OK
    assert len(await table(db)) == 500


CHILD = textwrap.dedent("""
    import asyncio, sys
    import aiohttp
    from syncd.db.pool import Database
    from syncd.sync.base import RunContext
    from syncd.sync.neolock_uploads import NeoLockUploadsJob
    from syncd.vendors.neolock.client import NeoLockClient

    async def main(dsn, url, login, password):
        db = await Database.connect(dsn)
        async with aiohttp.ClientSession() as session:
            client = NeoLockClient(session, url, login, password, rate=20)
            job = NeoLockUploadsJob(db, client, page_size=100, ahead=2, commit_pages=2)
            print("started", flush=True)
            await job.run(RunContext(db, job.name))

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_kill_9_mid_run_resumes_from_the_last_commit_and_ends_identical(
        db: Database, db_dsn: str) -> None:
    """A process running the job is killed with SIGKILL after some groups committed; the next
    run resumes from the committed cursor (it does not start over) and the final table is
    identical to the one an uninterrupted run writes."""
    state = neosim.NeoLockSim(seed=13, devices=3000)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, db_dsn, running.url, state.login, state.password,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            for _ in range(600):  # up to a minute on a busy machine
                cursor = await db.fetchval("cursor_get", "neolock-uploads") or {}
                if cursor.get("next_page", 0) >= 6:
                    break
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        killed_at = (await db.fetchval("cursor_get", "neolock-uploads"))["next_page"]
        assert 6 <= killed_at < 30, "the child was not killed mid-run"
        committed = len(await table(db))
        assert committed == killed_at * 100
        async with aiohttp.ClientSession() as session:
            client = NeoLockClient(session, running.url, state.login, state.password)
            job = NeoLockUploadsJob(db, client, page_size=100, commit_pages=2)
            resumed = await JobRunner(db).run(job)
            assert resumed.outcome is Outcome.OK
            assert resumed.items == 3000 - killed_at * 100  # resumed, not started over
            after_crash = await table(db)
            async with db.connection() as conn:
                await conn.execute("TRUNCATE vendor.phone_uploads, ops.cursors")
            assert (await JobRunner(db).run(job)).outcome is Outcome.OK
            uninterrupted = await table(db)
    assert len(after_crash) == 3000
    assert after_crash == uninterrupted

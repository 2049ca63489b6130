"""A poison push fails alone: it never stalls the inbox, and the attempt cap holds for any failure.

Runs the real app (intake + inbox worker) against the NeoLock simulator and a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from syncd.app import create_app
from syncd.db import ops
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.inbox.worker import MAX_ATTEMPTS, InboxWorker
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.settings.core import Settings
from syncd.vendors.neolock.client import NeoLockClient
from syncd.web import intake

AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]
SECRET = "poison-test-hook-secret-0123456789"
HOOK = f"/hooks/neolock/{SECRET}"
JOBS_OFF = {name: {"enabled": False} for name in (
    "housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 30 devices."""
    state = neosim.NeoLockSim(seed=5, devices=30)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


async def statuses(pg: asyncpg.Connection) -> dict[str, tuple[str, str | None]]:
    """Every inbox event's (status, error) by dedupe key."""
    rows = await pg.fetch("SELECT dedupe_key, status, error FROM ops.inbox")
    return {r["dedupe_key"]: (r["status"], r["error"]) for r in rows}


async def settled(pg: asyncpg.Connection, expected: int, timeout: float = 10.0
                  ) -> dict[str, tuple[str, str | None]]:
    """Wait (at most `timeout` s) until `expected` events exist and none is pending."""
    found: dict[str, tuple[str, str | None]] = {}
    for _ in range(int(timeout / 0.05)):
        found = await statuses(pg)
        if len(found) == expected and all(s != "pending" for s, _ in found.values()):
            break
        await asyncio.sleep(0.05)
    return found


async def test_a_poison_event_fails_alone_while_ordinary_events_are_processed(
        sim: tuple[neosim.NeoLockSim, Running], make_settings: Callable[..., Settings],
        aiohttp_client: AiohttpClient, db_dsn: str) -> None:
    """Pushes with numbers Python's json cannot read by default are processed, a stored body the
    worker cannot decode at all is marked failed with its reason, and the 20 ordinary events
    leased in the same batch all finish within seconds."""
    state, running = sim
    settings = make_settings(jobs=JOBS_OFF, neolock={
        "base_url": running.url, "login": state.login, "password": state.password,
        "webhook_secret": SECRET})
    client = await aiohttp_client(create_app(settings))
    uids = sorted(state.devices)
    committer = client.app[intake.INTAKE].committer
    # Stored before intake refused such bodies (or by another writer): nesting past Python's limit.
    deep = json.dumps({"deviceUid": uids[0], "a": None}).replace("null", "[" * 1500 + "]" * 1500)
    assert await committer.submit(InboxItem("neolock", "id:deep", None, None, deep))
    pushes: dict[str, bytes] = {
        "huge-exponent": b'{"id": "huge-exponent", "deviceUid": "%s", "x": 1e131071}'
                         % uids[1].encode(),
        "huge-integer": b'{"id": "huge-integer", "deviceUid": "%s", "n": %s}'
                        % (uids[2].encode(), b"7" * 100_000),
    }
    for i in range(20):
        pushes[f"ordinary-{i}"] = json.dumps(
            {"id": f"ordinary-{i}", "deviceUid": uids[3 + i]}).encode()
    for body in pushes.values():
        resp = await client.post(HOOK, data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 200, await resp.text()
    pg = await asyncpg.connect(db_dsn)
    try:
        found = await settled(pg, len(pushes) + 1)
    finally:
        await pg.close()
    status, error = found.pop("id:deep")
    assert status == "failed"
    assert error is not None and error.startswith("unreadable body: RecursionError")
    assert found == {f"id:{key}": ("processed", None) for key in pushes}


async def test_the_attempt_cap_holds_when_attempts_end_without_an_outcome(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """An event whose every attempt ended with no outcome recorded (the worker died, or failed in
    a way nobody foresaw) is marked failed once it has used its attempts, and is not leased again."""
    state, running = sim
    item = InboxItem("neolock", "id:orphan", None, None, json.dumps(
        {"deviceUid": sorted(state.devices)[0]}))
    assert await GroupCommitter(db).submit(item)
    for attempt in range(MAX_ATTEMPTS):  # each lease expires at once, as if its worker died
        leased = await ops.lease_events(db, 10, 0.0, MAX_ATTEMPTS)
        assert [e.attempts for e in leased] == [attempt + 1]
    assert await ops.lease_events(db, 10, 0.0, MAX_ATTEMPTS) == []
    async with aiohttp.ClientSession() as session:
        worker = InboxWorker(db, NeoLockClient(session, running.url, state.login, state.password))
        assert await worker.process_due() == 0
    assert await ops.inbox_counts(db) == {"failed": 1}
    assert running.counters.requests == 0  # the exhausted event was never re-read

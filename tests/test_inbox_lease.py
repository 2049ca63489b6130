"""Inbox outcomes are written only under the lease: a worker whose lease lapsed cannot overwrite
what the event's next holder recorded (issue 19, item 4)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.inbox.worker import InboxWorker
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.metrics import Metrics
from syncd.vendors.neolock.client import NeoLockClient
from tests.waiting import wait_for

DEVICE_ROUTE = "/api/clients/devices/{deviceUid}"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 3 devices."""
    state = neosim.NeoLockSim(seed=6, devices=3)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


async def event_row(db: Database) -> dict[str, object]:
    """The one inbox event's status, error, attempts and whether its lease ran out."""
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT status, error, attempts, next_attempt_at <= now()"
                                  " AS lapsed FROM ops.inbox")
    assert row is not None
    return dict(row)


async def lapsed(db: Database) -> bool:
    """True once the event's lease has run out."""
    return bool((await event_row(db))["lapsed"])


async def test_a_worker_whose_lease_lapsed_cannot_overwrite_the_next_holders_outcome(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """Worker A leases a push for 0.5 s and its device GET takes 1.5 s and fails; meanwhile the
    lease lapses and worker B processes the push. A's retry-later is dropped, logged and counted:
    the event stays processed by B, with no error."""
    state, running = sim
    uid = sorted(state.devices)[0]
    assert await GroupCommitter(db).submit(InboxItem(
        "neolock", "id:1", None, uid, json.dumps({"id": "1", "deviceUid": uid})))
    metrics = Metrics()
    running.faults.set(DEVICE_ROUTE, FaultSpec(latency=1.5, error_rate=1.0))
    async with aiohttp.ClientSession() as http:
        def client() -> NeoLockClient:
            return NeoLockClient(http, running.url, state.login, state.password, max_retries=0)

        slow = InboxWorker(db, client(), metrics, lease_seconds=0.5)
        with capture_logs() as logs:
            first = asyncio.create_task(slow.process_due())
            await wait_for(lambda: running.counters[DEVICE_ROUTE].requests == 1, timeout=15,
                           what="the slow worker's device GET")
            running.faults.clear()  # B's GET is answered at once
            await wait_for(lambda: lapsed(db), timeout=15, what="the lease to lapse")
            assert await InboxWorker(db, client()).process_due() == 1
            assert (await event_row(db))["status"] == "processed"
            assert await first == 1
    row = await event_row(db)
    assert (row["status"], row["error"], row["attempts"]) == ("processed", None, 2)
    lost = [e for e in logs if e["event"] == "inbox.lease_lost"]
    assert len(lost) == 1 and lost[0]["dropped"] == "retried" and lost[0]["attempt"] == 1
    assert 'syncd_events_total{outcome="lease_lost",source="neolock"} 1.0' in \
        metrics.render().decode()


async def test_an_outcome_after_the_lease_ran_out_is_dropped_and_the_event_is_due_again(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """A worker that finishes after its 0.3 s lease ran out (its GET took 1 s) writes nothing:
    the event is still pending, due, and the next worker settles it."""
    state, running = sim
    uid = sorted(state.devices)[1]
    assert await GroupCommitter(db).submit(InboxItem(
        "neolock", "id:2", None, uid, json.dumps({"id": "2", "deviceUid": uid})))
    running.faults.set(DEVICE_ROUTE, FaultSpec(latency=1.0))
    async with aiohttp.ClientSession() as http:
        client = NeoLockClient(http, running.url, state.login, state.password)
        assert await InboxWorker(db, client, lease_seconds=0.3).process_due() == 1
        row = await event_row(db)
        assert (row["status"], row["attempts"], row["lapsed"]) == ("pending", 1, True)
        running.faults.clear()
        assert await InboxWorker(db, client).process_due() == 1
    assert (await event_row(db))["status"] == "processed"

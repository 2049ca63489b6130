"""One actor per subject: remediation runs claim their cases, checking and recording the cooldown
and the cap in one transaction, so concurrent appliers never act twice on one subject within the
cooldown nor pass the cap together (issue 19, item 3)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from syncd.db import drift
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.reconcile import remediate
from syncd.reconcile.engine import reconcile
from syncd.reconcile.job import build_remediators
from syncd.settings.core import Settings
from tests.test_remediation import apply_settings, log_rows, plant

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOCK_ROUTE = "/api/clients/devices/lock"


@pytest.fixture
async def neo() -> AsyncIterator[tuple[neosim.NeoLockSim, Running, list[str]]]:
    """A NeoLock simulator with 8 Enrolled devices that records the device of every lock POST;
    a lock takes 0.3 s to answer, so appliers that did not coordinate all see the device still
    Enrolled when they re-read it."""
    state = neosim.NeoLockSim(seed=12, devices=0, transition_delay=0.05)
    locks: list[str] = []

    @web.middleware
    async def record_locks(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == LOCK_ROUTE:
            locks.append(json.loads(await request.read())["deviceUid"])
        return await handler(request)

    app = neosim.create_app(state)
    app.middlewares.insert(0, record_locks)
    async with serve(app, prefix=neosim.BASE_PATH) as running:
        running.faults.set(LOCK_ROUTE, FaultSpec(latency=0.3))
        yield state, running, locks


async def applier(db_dsn: str, settings: Settings, now: dt.datetime) -> list[str]:
    """One `syncd reconcile --apply` as its own process would be: its own pool and vendor
    client; returns the subjects it attempted."""
    db = await Database.connect(db_dsn, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession() as http:
            remediators = build_remediators(settings, db, http)
            attempts = await remediate.apply(db, remediators, settings.reconcile, now)
    finally:
        await db.close()
    return [a.subject for a in attempts]


async def test_concurrent_appliers_share_the_cap_and_never_act_twice_on_a_subject(
        db: Database, db_dsn: str, make_settings: Callable[..., Settings],
        neo: tuple[neosim.NeoLockSim, Running, list[str]]) -> None:
    """Five appliers started together over 8 devices due for locking (cap 3, cooldown 1 h): 3
    lock POSTs in all, on 3 different devices; a later run acts on 3 other devices, never on
    the cooled-down ones."""
    sim, running, locks = neo
    settings = apply_settings(make_settings, running, sim, max_actions_per_run=3,
                              cooldown_seconds=3600)
    uids = [sim.fleet.add_device(state="Enrolled").device_uid for _ in range(8)]
    for uid in uids:
        await plant(db, uid, "Enrolled", "locked")
    now = dt.datetime.now(dt.UTC)
    assert (await reconcile(db, settings, now)).merge.opened == 8
    first = await asyncio.gather(*(applier(db_dsn, settings, now) for _ in range(5)))
    assert sorted(len(subjects) for subjects in first) == [0, 0, 0, 0, 3]
    assert len(locks) == 3 and len(set(locks)) == 3
    first_locks = list(locks)
    second = await applier(db_dsn, settings, dt.datetime.now(dt.UTC))
    assert len(second) == 3 and not set(second) & set(first_locks)
    assert len(locks) == 6 and collections.Counter(locks).most_common(1)[0][1] == 1
    rows = await log_rows(db)
    assert sorted(subject for _, _, subject, _ in rows) == sorted(locks)


async def test_a_run_that_died_holding_claims_stops_counting_against_the_cap_at_its_lease(
        db: Database, make_settings: Callable[..., Settings],
        neo: tuple[neosim.NeoLockSim, Running, list[str]]) -> None:
    """Claims left by a run that never released them (killed) hold the cap until their lease
    ends; then another run may act, on other subjects only (the claimed ones keep cooling)."""
    sim, running, locks = neo
    settings = apply_settings(make_settings, running, sim, max_actions_per_run=2,
                              cooldown_seconds=3600)
    for _ in range(4):
        await plant(db, sim.fleet.add_device(state="Enrolled").device_uid, "Enrolled", "locked")
    now = dt.datetime.now(dt.UTC)
    await reconcile(db, settings, now)
    dead = await drift.claim(db, now, run=uuid.uuid4(), doable=["phone.lock|neolock"],
                             cooldown=dt.timedelta(hours=1), cap=2,
                             lease=dt.timedelta(seconds=0.5))  # then "kill -9"
    async with aiohttp.ClientSession() as http:
        remediators = build_remediators(settings, db, http)
        assert await remediate.apply(db, remediators, settings.reconcile, now) == []
        async with db.connection() as conn:  # the dead run's lease runs out
            await conn.execute("UPDATE ops.remediation_claims SET lease_until = now()")
        attempts = await remediate.apply(db, remediators, settings.reconcile, now)
    assert len(attempts) == 2
    assert not {a.subject for a in attempts} & {c.subject for c in dead}
    assert sorted(locks) == sorted(a.subject for a in attempts)

"""NeoLock paged jobs: every full pass ends with its cursor back at the start, however the fleet
size divides by the batch or page size (issue 9, item 8)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.db import ops
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from syncd.sync import neolock
from syncd.vendors.neolock.client import NeoLockClient


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 30 devices: a multiple of the batch sizes used below."""
    state = neosim.NeoLockSim(seed=9, devices=30, transition_delay=0.05)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


async def seed_contracts(db: Database, uids: list[str]) -> None:
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO local.phone_contracts (device_uid, desired_state) VALUES ($1, 'active')",
            [(u,) for u in uids])


async def stored_states(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        return {r["device_uid"]: r["vendor_state"] for r in await conn.fetch(
            "SELECT device_uid, vendor_state FROM vendor.phones")}


def flip(state: neosim.NeoLockSim, uids: list[str]) -> None:
    """Change the state of `uids` at the vendor (Locked <-> Enrolled, at once)."""
    for uid in uids:
        current = state.devices[uid].status
        state.set_state(uid, "Enrolled" if current == "Locked" else "Locked")


@pytest.mark.parametrize("batch", [10, 15, 30])
async def test_devices_pass_resets_its_cursor_when_the_fleet_is_a_multiple_of_the_batch(
        db: Database, sim: tuple[neosim.NeoLockSim, Running], batch: int) -> None:
    """With 30 known devices and batches that divide 30, every run is a full pass: the cursor is
    back at the start after each run, and vendor changes made between runs are all picked up by
    the very next run (before the fix, that run read nothing and left them stale)."""
    state, running = sim
    uids = sorted(state.devices)
    await seed_contracts(db, uids)
    runner = JobRunner(db)
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        # Every detail counts as stale, so every run must GET every device: a full pass.
        job = neolock.NeoLockDevicesJob(db, client, batch=batch, scan=batch,
                                        detail_max_age=dt.timedelta(0))
        for round_ in range(3):
            result = await runner.run(job)
            assert result.outcome is Outcome.OK, result.error
            assert await db.fetchval("cursor_get", job.name) == {"after": ""}
            stored = await stored_states(db)
            assert stored == {uid: state.devices[uid].status for uid in uids}, f"run {round_}"
            flip(state, uids[round_ * 7: round_ * 7 + 7])


async def test_a_resumed_devices_pass_finishes_the_fleet_then_starts_over(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """A run resuming from a cursor left by a killed run reads the rest of the fleet and resets
    the cursor; the next run reads the whole fleet, even when the cursor sat on the last id."""
    state, running = sim
    uids = sorted(state.devices)
    await seed_contracts(db, uids)
    runner = JobRunner(db)
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        job = neolock.NeoLockDevicesJob(db, client, batch=10, scan=10,
                                        detail_max_age=dt.timedelta(0))
        async with db.transaction() as conn:  # what a run killed after its second batch leaves
            await ops.set_cursor(conn, job.name, {"after": uids[19]})
        assert (await runner.run(job)).outcome is Outcome.OK
        assert set(await stored_states(db)) == set(uids[20:])
        assert await db.fetchval("cursor_get", job.name) == {"after": ""}
        flip(state, uids[:5])
        assert (await runner.run(job)).outcome is Outcome.OK
        assert await stored_states(db) == {uid: state.devices[uid].status for uid in uids}
        # A cursor stranded on the last id (what the old code left) still ends in a reset.
        async with db.transaction() as conn:
            await ops.set_cursor(conn, job.name, {"after": uids[-1]})
        assert (await runner.run(job)).outcome is Outcome.OK
        assert await db.fetchval("cursor_get", job.name) == {"after": ""}


async def test_uploads_pass_resets_its_cursor_when_the_listing_is_a_multiple_of_the_page(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """30 uploads in pages of 10 (or 30): the run reads the empty page that follows, resets its
    cursor, and the next run starts from the first page again."""
    state, running = sim
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        for size in (10, 30):
            job = neolock.NeoLockUploadsJob(db, client, page_size=size)
            for _ in range(2):
                result = await JobRunner(db).run(job)
                assert result.outcome is Outcome.OK, result.error
                assert (await db.fetchval("cursor_get", job.name))["next_page"] == 0
                async with db.connection() as conn:
                    assert await conn.fetchval("SELECT count(*) FROM vendor.phone_uploads") == 30

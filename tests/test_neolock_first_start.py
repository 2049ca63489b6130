"""A first `syncd run` on a NeoLock tenant costs a handful of GETs, not one per device: the
devices job adopts listed states scan by scan and waits for the uploads listing before reading
devices known only from contracts (issue 19, item 4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from syncd.db import ops
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.jobs.catalog import build_jobs
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.core import Settings
from syncd.sync.neolock import NeoLockDevicesJob
from syncd.sync.neolock_uploads import NeoLockUploadsJob
from syncd.vendors.neolock.client import NeoLockClient

DEVICE_ROUTE = "/api/clients/devices/{deviceUid}"
UPLOADS_ROUTE = "/api/clients/devices/uploads"
UNKNOWN = ["0000000000000001", "0000000000000002"]  # under contract, at no NeoLock tenant


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock tenant of 60 devices whose uploads listing answers slowly (0.1 s a page)."""
    state = neosim.NeoLockSim(seed=31, devices=60)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        running.faults.set(UPLOADS_ROUTE, FaultSpec(latency=0.1))
        yield state, running


async def contracts(db: Database, uids: list[str]) -> None:
    """The business's contracts for `uids` (active)."""
    async with db.connection() as conn:
        await conn.executemany("INSERT INTO local.phone_contracts (device_uid, desired_state,"
                               " updated_at) VALUES ($1, 'active', now())", [(u,) for u in uids])


async def uploads_mid_pass(db: Database, client: NeoLockClient) -> asyncio.Task[object]:
    """Start an uploads pass 10 rows a page and return once two pages are committed."""
    job = NeoLockUploadsJob(db, client, page_size=10, ahead=1, commit_pages=1)
    task: asyncio.Task[object] = asyncio.create_task(JobRunner(db).run(job))
    deadline = time.monotonic() + 20
    while int((await ops.get_cursor(db, job.name)).get("next_page", 0)) < 2:
        assert time.monotonic() < deadline and not task.done(), "the uploads pass did not start"
        await asyncio.sleep(0.01)
    return task


async def test_a_devices_run_during_the_first_uploads_pass_gets_no_device_under_contract(
        db: Database, make_settings: Callable[..., Settings],
        vendor: tuple[neosim.NeoLockSim, Running]) -> None:
    """All 60 devices (and 2 NeoLock does not have) are under contract; neolock-devices, as
    the daemon builds it, runs while the first uploads pass is two pages in: it makes no device
    GET. After the pass, the next run adopts every listed state and GETs only the 2 devices the
    listing lacks (404)."""
    state, running = vendor
    await contracts(db, sorted(state.devices) + UNKNOWN)
    settings = make_settings(neolock={"base_url": running.url, "login": state.login,
                                      "password": state.password})
    async with aiohttp.ClientSession() as http:
        devices = build_jobs(settings, db, http)["neolock-devices"]
        client = NeoLockClient(http, running.url, state.login, state.password)
        uploads = await uploads_mid_pass(db, client)
        assert (await JobRunner(db).run(devices)).outcome is Outcome.OK
        assert running.counters[DEVICE_ROUTE].requests == 0
        assert not uploads.done()  # it was under way the whole time
        await uploads
        assert (await JobRunner(db).run(devices)).outcome is Outcome.OK
    assert running.counters[DEVICE_ROUTE].requests == 2
    async with db.connection() as conn:
        stored = {r["device_uid"]: r["vendor_state"] for r in await conn.fetch(
            "SELECT device_uid, vendor_state FROM vendor.phones")}
    assert stored == {uid: d.status for uid, d in state.devices.items()}


async def test_devices_listed_while_the_devices_run_is_under_way_are_adopted_not_read(
        db: Database, vendor: tuple[neosim.NeoLockSim, Running]) -> None:
    """A devices run whose first scan is slow (two GETs that take 1.5 s) while the uploads pass
    goes on adopts, scan by scan, the devices listed meanwhile: it GETs none of the 60 (those
    listed behind its scan are adopted by the next run, again without a GET)."""
    state, running = vendor
    await contracts(db, UNKNOWN)  # sorted first: read in the first scan
    running.faults.set(DEVICE_ROUTE, FaultSpec(latency=1.5))

    async def adopted() -> int:
        async with db.connection() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM vendor.phones"
                                            " WHERE detail_at IS NULL"))

    async with aiohttp.ClientSession() as http:
        client = NeoLockClient(http, running.url, state.login, state.password)
        uploads = await uploads_mid_pass(db, client)
        at_start = await listed_rows(db)
        devices = NeoLockDevicesJob(db, client, batch=10, scan=10,
                                    detail_max_age=dt.timedelta(hours=24))
        assert (await JobRunner(db).run(devices)).outcome is Outcome.OK
        assert uploads.done()  # the pass ended while the first scan waited
        await uploads
        assert running.counters[DEVICE_ROUTE].requests == len(UNKNOWN)
        assert await adopted() > at_start  # rows listed during the run were adopted
        async with db.connection() as conn:
            await conn.execute("DELETE FROM local.phone_contracts")
        assert (await JobRunner(db).run(devices)).outcome is Outcome.OK
    assert running.counters[DEVICE_ROUTE].requests == len(UNKNOWN)
    assert await adopted() == 60


async def listed_rows(db: Database) -> int:
    """Devices in the uploads listing as stored so far."""
    async with db.connection() as conn:
        return int(await conn.fetchval("SELECT count(DISTINCT device_uid)"
                                       " FROM vendor.phone_uploads"))

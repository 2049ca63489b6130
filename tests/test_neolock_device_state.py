"""Device state for a large fleet without one GET per device: states come from the uploads
listing; neolock-devices GETs only the devices that need it, and the GET stays the truth."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.jobs.runner import JobRunner, Outcome
from syncd.sync import neolock
from syncd.sync.neolock_uploads import NeoLockUploadsJob
from syncd.vendors.neolock.client import NeoLockClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEVICE_ROUTE = "/api/clients/devices/{deviceUid}"


class Vendor:
    """A simulator with 30 devices whose uploads listing can be made to lie about one device."""

    def __init__(self, state: neosim.NeoLockSim, running: Running,
                 listed: dict[str, str]) -> None:
        self.state = state
        self.running = running
        self.listed = listed  # deviceUid -> status the listing shows instead of the real one

    @property
    def gets(self) -> int:
        """Device GETs the simulator has answered so far."""
        return self.running.counters[DEVICE_ROUTE].requests


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    """The simulator, with a middleware that overrides listed statuses on request."""
    state = neosim.NeoLockSim(seed=21, devices=30)
    listed: dict[str, str] = {}

    @web.middleware
    async def lying_listing(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if listed and request.path.endswith("/clients/devices/uploads"):
            assert isinstance(response, web.Response) and response.body is not None
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            for row in body["data"]:
                row["status"] = listed.get(row["deviceUid"], row["status"])
            return web.json_response(body)
        return response

    app = neosim.create_app(state)
    app.middlewares.insert(0, lying_listing)
    async with serve(app, prefix=neosim.BASE_PATH) as running:
        yield Vendor(state, running, listed)


async def phones(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        return {r["device_uid"]: r for r in await conn.fetch(
            "SELECT device_uid, vendor_state, detail_at, license_expiry FROM vendor.phones")}


async def sync(db: Database, vendor: Vendor, *, uploads: bool = True,
               max_age: dt.timedelta = dt.timedelta(hours=24)) -> int:
    """Run neolock-uploads (optionally) then neolock-devices; return the device GETs made."""
    async with aiohttp.ClientSession() as session:
        client = NeoLockClient(session, vendor.running.url, vendor.state.login,
                               vendor.state.password)
        if uploads:
            assert (await JobRunner(db).run(NeoLockUploadsJob(db, client))).outcome is Outcome.OK
        before = vendor.gets
        job = neolock.NeoLockDevicesJob(db, client, detail_max_age=max_age)
        result = await JobRunner(db).run(job)
        assert result.outcome is Outcome.OK, result.error
        return vendor.gets - before


def real_states(vendor: Vendor) -> dict[str, str]:
    return {uid: d.status for uid, d in vendor.state.devices.items()}


async def test_listed_devices_show_their_state_without_a_get(
        db: Database, vendor: Vendor) -> None:
    """After the uploads job and a devices run on a new fleet, every listed device is in
    vendor.phones with its listed state and no detail yet, and not one device GET was made (the
    first detail reads are spread over the day)."""
    assert await sync(db, vendor) == 0
    stored = await phones(db)
    assert {uid: r["vendor_state"] for uid, r in stored.items()} == real_states(vendor)
    assert all(r["detail_at"] is None for r in stored.values())
    assert vendor.gets == 0


async def test_listed_state_changes_reach_devices_no_get_has_described(
        db: Database, vendor: Vendor) -> None:
    """A device known only from the listing follows the listing's state changes, without a GET."""
    assert await sync(db, vendor) == 0
    uid = sorted(vendor.state.devices)[0]
    current = vendor.state.devices[uid].status
    vendor.state.set_state(uid, "Enrolled" if current == "Locked" else "Locked")
    assert await sync(db, vendor) == 0
    assert (await phones(db))[uid]["vendor_state"] == vendor.state.devices[uid].status


async def test_devices_job_gets_only_devices_listed_differently_since_their_last_get(
        db: Database, vendor: Vendor) -> None:
    """Once every device has its detail, a change of state at the vendor for 3 devices costs
    exactly 3 GETs on the next sync, and the stored states match the vendor again."""
    assert await sync(db, vendor, max_age=dt.timedelta(0)) == 30  # every detail read once
    assert all(r["detail_at"] is not None for r in (await phones(db)).values())
    changed = sorted(vendor.state.devices)[:3]
    for uid in changed:
        current = vendor.state.devices[uid].status
        vendor.state.set_state(uid, "Enrolled" if current == "Locked" else "Locked")
    assert await sync(db, vendor) == 3
    assert {uid: r["vendor_state"] for uid, r in (await phones(db)).items()} == \
        real_states(vendor)
    assert await sync(db, vendor) == 0  # nothing changed: no GET at all


async def test_the_get_wins_where_the_listing_disagrees(db: Database, vendor: Vendor) -> None:
    """A listing that shows a device Locked while its GET says otherwise leads to one GET; the
    stored state is the GET's, and the device is not read again while the listing stays so."""
    assert await sync(db, vendor, max_age=dt.timedelta(0)) == 30
    uid = next(u for u, d in sorted(vendor.state.devices.items()) if d.status != "Locked")
    vendor.listed[uid] = "Locked"
    assert await sync(db, vendor) == 1
    assert (await phones(db))[uid]["vendor_state"] == vendor.state.devices[uid].status != "Locked"
    assert await sync(db, vendor) == 0


async def test_details_come_due_spread_between_half_and_all_of_the_max_age(
        db: Database, vendor: Vendor) -> None:
    """With details 12 h old and a 24 h maximum no device is due; at 18 h some but not all are;
    at 24 h all are. A device named by a push whose refresh failed is due at once."""
    assert await sync(db, vendor, max_age=dt.timedelta(0)) == 30

    async def age(hours: float) -> None:
        async with db.connection() as conn:
            await conn.execute("UPDATE vendor.phones SET detail_at = now() - $1::interval",
                               dt.timedelta(hours=hours))
            # …and the listing as it was before those GETs (it has not changed since).
            await conn.execute("UPDATE vendor.phone_uploads SET last_changed_at = now() - "
                               "$1::interval - interval '1 hour'", dt.timedelta(hours=hours))

    await age(12)
    assert await sync(db, vendor, uploads=False) == 0
    await age(18)
    some = await sync(db, vendor, uploads=False)
    assert 0 < some < 30
    await age(24.01)
    assert await sync(db, vendor, uploads=False) == 30
    pushed = sorted(vendor.state.devices)[5]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO ops.inbox (source, dedupe_key, subject, body, status) "
            "VALUES ('neolock', 'id:x', $1, '{}'::jsonb, 'failed')", pushed)
    assert await sync(db, vendor, uploads=False) == 1
    assert await sync(db, vendor, uploads=False) == 0  # read since the push: not again

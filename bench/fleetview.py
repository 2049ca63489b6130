"""`fleetview`: how long, and how many requests, a fresh view of 100k devices' states takes.

The NeoLock simulator (in this process) holds 100k devices and enforces the real limit, 100
requests in any second; syncd paces at its default 90/s. Two views are timed:

- first: an empty database; `neolock-uploads` then `neolock-devices` (every device is new, so
  the devices job only schedules their first detail reads over the day: a few are due at once);
- steady: every device's detail read (as after the first day), then 1% of the fleet changes state
  at the vendor; `neolock-uploads` then `neolock-devices` must bring every stored state back in
  line with the vendor, GETting only the changed devices.

Target: the steady view in at most 2% of the fleet's requests (one GET per device would be 100k
requests, 17 minutes at 100/s) and under a minute, with every state right.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import asyncpg

from bench.common import Postgres, Report
from syncd.db.pool import Database
from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.neolock import BASE_PATH, NeoLockSim, create_app
from syncd.sync.base import Job, RunContext
from syncd.sync.neolock import NeoLockDevicesJob
from syncd.sync.neolock_uploads import NeoLockUploadsJob
from syncd.vendors import usage
from syncd.vendors.neolock.client import NeoLockClient

DEVICES = 100_000
CHANGED = DEVICES // 100
MAX_REQUESTS = DEVICES // 50
MAX_SECONDS = 60.0


async def timed(db: Database, job: Job) -> tuple[float, int]:
    """Run a job once; its seconds and requests."""
    ctx = RunContext(db, job.name)
    began = time.perf_counter()
    with usage.counting(ctx.usage):  # as the job runner does: requests count to this run
        await job.run(ctx)
    return time.perf_counter() - began, ctx.requests


async def wrong_states(dsn: str, sim: NeoLockSim) -> int:
    """Devices whose stored state differs from the vendor's (or that are not stored)."""
    conn = await asyncpg.connect(dsn)
    try:
        stored: dict[str, str | None] = {
            r["device_uid"]: r["vendor_state"] for r in await conn.fetch(
                "SELECT device_uid, vendor_state FROM vendor.phones WHERE provider = 'neolock'")}
    finally:
        await conn.close()
    return sum(stored.get(uid) != d.status for uid, d in sim.devices.items())


async def view(db: Database, client: NeoLockClient) -> dict[str, Any]:
    """Uploads then devices: seconds and requests of each."""
    up_s, up_r = await timed(db, NeoLockUploadsJob(db, client))
    dev_s, dev_r = await timed(db, NeoLockDevicesJob(db, client))
    return {"seconds": up_s + dev_s, "requests": up_r + dev_r, "uploads": (up_s, up_r),
            "devices": (dev_s, dev_r)}


def line(name: str, v: dict[str, Any], wrong: int) -> str:
    """One detail line."""
    (us, ur), (ds, dr) = v["uploads"], v["devices"]
    return (f"{name}: {v['seconds']:.1f} s, {v['requests']} requests (uploads {us:.1f} s / {ur}; "
            f"devices {ds:.1f} s / {dr}); states differing from the vendor: {wrong}")


async def run(pg: Postgres) -> Report:
    """Time the first and the steady full view of 100k devices at the real rate limit."""
    sim = NeoLockSim(seed=5, devices=DEVICES, rate_limit=100)
    async with pg.database("fleetview") as dsn, \
            serve(create_app(sim), prefix=BASE_PATH) as running, \
            aiohttp.ClientSession() as session:
        db = await Database.connect(dsn, min_size=1, max_size=4)
        try:
            client = NeoLockClient(session, running.url, sim.login, sim.password, rate=90.0)
            first = await view(db, client)
            first_wrong = await wrong_states(dsn, sim)
            async with db.connection() as conn:  # as after a day of spread detail reads
                await conn.execute("UPDATE vendor.phone_uploads SET last_changed_at = now() - "
                                   "interval '1 hour'")
                await conn.execute("UPDATE vendor.phones SET detail_at = now() - "
                                   "interval '1 minute'")
            for uid in sorted(sim.devices)[::DEVICES // CHANGED][:CHANGED]:
                current = sim.devices[uid].status
                sim.set_state(uid, "Enrolled" if current == "Locked" else "Locked")
            steady = await view(db, client)
            steady_wrong = await wrong_states(dsn, sim)
        finally:
            await db.close()
    limited, seen = running.counters.rate_limited, running.counters.requests
    # syncd's own count of its requests must be the vendor's: a count that lost requests would
    # pass the request limit without having earned it.
    counted = first["requests"] + steady["requests"]
    met = (steady["requests"] <= MAX_REQUESTS and steady["seconds"] <= MAX_SECONDS
           and steady_wrong == 0 and first_wrong == 0 and limited == 0 and counted == seen)
    return Report(
        "fleet_view_100k", f"{steady['seconds']:.1f} s, {steady['requests']} requests "
        f"with {CHANGED} changed", f"≤ {MAX_SECONDS:g} s and ≤ {MAX_REQUESTS} requests, every "
        "state right, 0 × 429", met,
        [f"requests counted by syncd's runs {counted}, seen by the simulator {seen}: "
         f"{'ok' if counted == seen else 'MISMATCH'}",
         line("first view (empty database)", first, first_wrong),
         line(f"steady view ({CHANGED} changed at the vendor)", steady, steady_wrong),
         f"429 answers: {limited}; one GET per device would be {DEVICES} requests "
         f"({DEVICES / 100 / 60:.0f} min at 100/s)"])

"""`python -m bench.memsync N SIM_URL DSN`: run a full NeoLock sync in a fresh process, print peak RSS.

syncd's NeoLockUploadsJob lists the N devices of the simulator at SIM_URL (pages of 1,000), then
NeoLockDevicesJob GETs every one of them (`detail_max_age` 0: every detail counts as stale, the
most a devices pass can do). The simulator runs in another process, so this one holds only syncd.
Prints one JSON line with the peak RSS (KiB) once connected and at the end, and what was synced.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import resource
import sys
import time
from typing import Any

SIM_LOGIN = "bench-login"
SIM_PASSWORD = "bench-password"  # noqa: S105 - the simulator's, on loopback
CLIENT_RATE = 5000.0  # memory is measured here, not pacing: far above the real 100/s


def peak_rss_kib() -> int:
    """This program's peak resident set size so far, in KiB.

    VmHWM, the high-water mark of the address space exec() gave this program, where Linux has
    it. getrusage()'s ru_maxrss is the fallback only: Linux carries it across fork and exec, so
    in a child it reports at least the parent's size at the fork (a benchmark process holding
    100k records would hide syncd's own number).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def sync(devices: int, url: str, dsn: str) -> dict[str, Any]:
    """Run NeoLockDevicesJob over every known device; report peak RSS before and after."""
    from bench.common import quiet_logging
    from syncd.runtime import open_database, open_http
    from syncd.settings.core import Settings
    from syncd.sync.base import RunContext
    from syncd.sync.neolock import NeoLockDevicesJob, NeoLockUploadsJob, neolock_client
    from syncd.vendors import usage

    quiet_logging()
    settings = Settings(database={"url": dsn},
                        neolock={"base_url": url, "login": SIM_LOGIN,
                                 "password": SIM_PASSWORD, "rate_limit": CLIENT_RATE})
    assert settings.neolock is not None
    async with open_database(settings, apply_migrations=False) as db, open_http() as session:
        client = neolock_client(settings.neolock, session)
        uploads = NeoLockUploadsJob(db, client)
        job = NeoLockDevicesJob(db, client, detail_max_age=dt.timedelta(0))
        ctx = RunContext(db, job.name)
        start = peak_rss_kib()
        began = time.perf_counter()
        with usage.counting(ctx.usage):  # as the job runner does: requests count to this run
            await uploads.run(RunContext(db, uploads.name))
            await job.run(ctx)
        seconds = time.perf_counter() - began
        async with db.connection() as conn:
            phones = int(await conn.fetchval("SELECT count(*) FROM vendor.phones"))
    return {"devices": devices, "rss_start_kib": start, "rss_peak_kib": peak_rss_kib(),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "phones": phones, "requests": ctx.requests, "seconds": seconds}


def main(argv: list[str]) -> int:
    """Parse N SIM_URL DSN, sync, print one JSON line."""
    if len(argv) != 3:
        print("usage: python -m bench.memsync N SIM_URL DSN", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(sync(int(argv[0]), argv[1], argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

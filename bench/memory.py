"""`memory`: peak RSS of syncd syncing 100k devices against syncing 10k.

NeoLockUploadsJob holds a bounded number of pages and NeoLockDevicesJob reads device ids in keyset
batches, so memory should not grow with the fleet. For each size: a NeoLock simulator with N devices
starts in its own process (`bench.simserver`: its fleet grows with N and must not be counted), and a
fresh `bench.memsync` process runs the uploads job then a devices pass that GETs every device, and
reports its peak RSS at the end. Pacing is
lifted (client 5000/s, simulator limit 10000/s): 100k devices at the real 100/s would take 17
minutes, and memory, not pacing, is measured here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Postgres, Report, run_json, subprocess_env
from bench.memsync import CLIENT_RATE

SIZES = (10_000, 100_000)
SIM_RATE_LIMIT = 10_000
TARGET = 1.2


@contextlib.asynccontextmanager
async def simulator(devices: int, uids_file: Path) -> AsyncIterator[str]:
    """Start `bench.simserver` with `devices` devices; yield its base URL; stop it afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.simserver", str(devices), "0", str(SIM_RATE_LIMIT),
        str(uids_file), cwd=REPO_ROOT, env=subprocess_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("bench.simserver exited before it listened")
        yield str(json.loads(line)["url"])
    finally:
        proc.stdin.close()  # the simulator stops when its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _mib(kib: Any) -> str:
    return f"{int(kib) / 1024:.1f} MiB"


def _detail(r: dict[str, Any]) -> str:
    n, seconds = int(r["devices"]), float(r["seconds"])
    return (f"{n // 1000}k: peak RSS {_mib(r['rss_peak_kib'])} (connected, before the job: "
            f"{_mib(r['rss_start_kib'])}; ru_maxrss {_mib(r['ru_maxrss_kib'])}); {r['phones']} "
            f"phones stored in {seconds:.1f} s ({int(r['requests']) / seconds:,.0f} req/s)")


async def run(pg: Postgres) -> Report:
    """Sync 10k and 100k devices in fresh processes; compare their peak RSS."""
    results: list[dict[str, Any]] = []
    for devices in SIZES:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            uids_file = Path(tmp) / "uids"
            async with simulator(devices, uids_file) as url, \
                    pg.database(f"memory_{devices}") as dsn:
                # The uploads job lists the devices itself (see bench.memsync).
                results.append(await run_json("bench.memsync", str(devices), url, dsn,
                                              timeout=480))
    small, large = results
    ratio = int(large["rss_peak_kib"]) / int(small["rss_peak_kib"])
    complete = all(int(r["phones"]) == int(r["devices"]) for r in results)
    return Report("rss_100k_vs_10k", f"{ratio:.2f}", f"≤ {TARGET}", ratio <= TARGET and complete, [
        *(_detail(r) for r in results),
        f"client rate_limit {CLIENT_RATE:g}/s, simulator limit {SIM_RATE_LIMIT}/s: memory is "
        "measured, not pacing; simulator in its own process" +
        ("" if complete else "; NOT every device was stored"),
        "peak RSS = VmHWM of the fresh process; ru_maxrss also counts the benchmark process's "
        "size at fork (Linux keeps it across exec), so it is shown, not compared",
    ])

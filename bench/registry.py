"""`registry`: `POST /v2/device` on the real daemon against a hand-built durable floor and bare
aiohttp, each server in a process of its own, driven by wrk.

Same method as `bench.ingest`. syncd's side (`python -m syncd run`, housekeeping off, the per-IP
rate limit lifted: all the load comes from one address) validates, normalises, upserts by MAC
with group commit and answers the documented envelope after COMMIT; the floor
(bench/floors.py) runs the same upsert behind a minimal group commit; bare reads the body and
answers a static envelope. wrk's bench/wrk/registry.lua gives every registration a MAC of its
own (a tenth carry another app_version). Afterwards vendor.app_devices must hold exactly the
devices syncd answered 200 "Success" (its syncd_http_requests counter; every MAC is new), and
every such answer wrk read must be among them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import asyncpg

from bench import sides
from bench.common import Postgres, Report
from bench.servers import (
    FALLBACK_REQUESTS,
    Round,
    Server,
    bench_server,
    counter,
    drive,
    load_generator,
    syncd_server,
)

ROUTE = "/v2/device"
BARE_GOAL = 0.6  # syncd/bare, kept for the record
LOG_LEVEL = os.environ.get("BENCH_SYNCD_LOG_LEVEL", "info")  # syncd's default: this
# route's access line is at debug, so info writes no line a registration


def syncd_config(dsn: str, log_level: str = LOG_LEVEL) -> dict[str, dict[str, object]]:
    """syncd with the registry on (its default), the rate limit lifted, housekeeping off."""
    return {
        "database": {"url": dsn},
        "logging": {"level": log_level, "format": "json"},
        "registry": {"rate_limit_per_minute": 1e9, "rate_limit_burst": 1_000_000},
        "jobs.housekeeping": {"enabled": False},
    }


async def run(pg: Postgres) -> Report:
    """Measure the three servers under the same load; check vendor.app_devices against the answers."""
    async with pg.database("registry") as dsn, pg.database("registry_floor") as floor_dsn:
        with tempfile.TemporaryDirectory(prefix="sb-") as tmp:  # short: a socket lives there

            async def load(server: Server, number: int, seconds: float) -> Round:
                # the Python generator's devices: a range of their own for every run
                offset = str(number * FALLBACK_REQUESTS + 1)
                return await drive(server, "registry.lua", seconds, [str(number % 256)],
                                   ("bench.regload", [offset]))

            async with bench_server("bare", "registry", ROUTE) as bare_server, \
                    bench_server("floor", "registry", ROUTE, floor_dsn) as floor_server, \
                    syncd_server(Path(tmp), ROUTE, syncd_config(dsn)) as syncd_proc:
                bare, floor, syncd = (sides.Side(bare_server, "bare aiohttp"),
                                      sides.Side(floor_server, "hand-built floor"),
                                      sides.Side(syncd_proc, "syncd run"))
                await sides.interleave([bare, floor, syncd], load)
                answered = int(await counter(syncd_proc.url, "syncd_http_requests_total",
                                             route=ROUTE, method="POST", status="200"))
        conn = await asyncpg.connect(dsn)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM vendor.app_devices"))
            history = int(await conn.fetchval("SELECT count(*) FROM vendor.app_device_history"))
        finally:
            await conn.close()
    consistent, check = sides.consistency(syncd, answered, stored, "vendor.app_devices",
                                          "registrations syncd answered Success")
    v = sides.verdict(bare, floor, syncd)
    return Report("registry", sides.summary(v, BARE_GOAL), sides.TARGET, v.met and consistent, [
        f"load: {load_generator()}; {sides.method()}; each server in its own process, "
        f"syncd's log level {LOG_LEVEL}; every registration a new MAC",
        bare.detail(), floor.detail(), syncd.detail(), *sides.ratio_details(v),
        f"{check}; history rows {history}",
    ])

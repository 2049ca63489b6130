"""`registry`: `POST /v2/device` on the real app against a bare aiohttp handler under the same load.

Same method as `bench.ingest`: the servers in this process on 127.0.0.1 with the same AppRunner
settings, load from a `bench.regload` subprocess (64 keep-alive connections), alternating rounds
after one warm-up each, a hand-built durable floor (bench/floors.py) as the third side. syncd's
side validates, normalises, upserts by MAC with group commit and answers the documented envelope
after COMMIT; the bare side reads the body and answers static JSON. The rate limit is lifted
(all the load comes from one address). Afterwards vendor.app_devices must hold exactly the
distinct devices syncd answered "Success" for.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bench import floors
from bench.common import Postgres, Report, run_json
from bench.ingest import Side, ratios, served
from syncd import heap
from syncd.app import create_app
from syncd.registry.routes import REGISTRY
from syncd.settings.core import Settings

CONCURRENCY = 64
REQUESTS = 2000  # per measured round and side
ROUNDS = 5
WARMUP = 640
TARGET = 0.6
ROUTE = "/v2/device"
JOBS_OFF = ("housekeeping",)


def syncd_settings(dsn: str, data_dir: Path) -> Settings:
    """syncd with the registry on (its default), no vendor configured and housekeeping off."""
    return Settings(
        data_dir=data_dir, database={"url": dsn},
        server={"host": "127.0.0.1", "port": 0, "shutdown_timeout": 5},
        jobs={name: {"enabled": False} for name in JOBS_OFF},
        registry={"rate_limit_per_minute": 1e9, "rate_limit_burst": 1_000_000},
    )


def bare_app() -> web.Application:
    """An app whose /v2/device handler reads the body and answers a static 200 JSON envelope."""

    async def device(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": 200, "message": "Success"})

    app = web.Application()
    app.router.add_post(ROUTE, device)
    return app


async def _load(url: str, total: int, offset: int) -> dict[str, Any]:
    return await run_json("bench.regload", url, str(total), str(CONCURRENCY), str(offset),
                          timeout=180)


async def run(pg: Postgres) -> Report:
    """Measure the three servers under the same load and compare their throughput."""
    bare, floor, registry = (Side("bare aiohttp"), Side("hand-built floor"),
                             Side("syncd /v2/device"))
    devices: set[int] = set()
    batches = 0
    async with pg.database("registry") as dsn, pg.database("registry_floor") as floor_dsn:
        pool = await asyncpg.create_pool(floor_dsn, min_size=2, max_size=4)
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            app = create_app(syncd_settings(dsn, Path(tmp)))
            async with served(bare_app()) as bare_port, \
                    served(floors.registry_floor(pool, ROUTE)) as floor_port, \
                    served(app) as syncd_port:
                heap.settle()  # as `syncd run` does once it listens (all sides share the process)
                bare_url, floor_url, syncd_url = (f"http://127.0.0.1:{port}{ROUTE}" for port in
                                                  (bare_port, floor_port, syncd_port))
                await _load(bare_url, WARMUP, 0)
                await _load(floor_url, WARMUP, 0)
                warm = await _load(syncd_url, WARMUP, 0)
                if warm["stored"] == WARMUP:
                    devices.update(range(WARMUP))
                offset = WARMUP // 2
                for _ in range(ROUNDS):
                    for side, url in ((bare, bare_url), (floor, floor_url)):
                        cpu = time.process_time()
                        side.add(await _load(url, REQUESTS, offset), time.process_time() - cpu)
                    cpu = time.process_time()
                    result = await _load(syncd_url, REQUESTS, offset)
                    registry.add(result, time.process_time() - cpu)
                    if result["stored"] == REQUESTS:
                        devices.update(range(offset, offset + REQUESTS))
                    offset += REQUESTS // 2
                batches = app[REGISTRY].writer.batches
        await pool.close()
        conn = await asyncpg.connect(dsn)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM vendor.app_devices"))
            history = int(await conn.fetchval("SELECT count(*) FROM vendor.app_device_history"))
        finally:
            await conn.close()
    per_round, floor_rounds, of_floor = (ratios(registry, bare), ratios(floor, bare),
                                         ratios(registry, floor))
    mid = ROUNDS // 2
    ratio = per_round[mid]
    overall = registry.throughput / bare.throughput if bare.throughput else 0.0
    consistent = stored == len(devices) and registry.not_ok == 0
    return Report(
        "registry_vs_bare", f"{ratio:.2f} (hand-built floor {floor_rounds[mid]:.2f}, syncd/floor "
        f"{of_floor[mid]:.2f})", f"≥ {TARGET}", ratio >= TARGET and consistent, [
        f"{CONCURRENCY} connections, {ROUNDS} alternating rounds of {REQUESTS} registrations per "
        f"side after {WARMUP} warm-up (each round re-posts half the previous round's devices, "
        "a tenth of the bodies with another app_version); load from a separate process",
        bare.detail(),
        floor.detail(),
        registry.detail(),
        f"ratio = median of the rounds' ratios ({', '.join(f'{r:.2f}' for r in per_round)}); "
        f"ratio of the totals {overall:.2f}",
        f"hand-built floor (bench/floors.py: same upsert, minimal group commit, nothing else) "
        f"vs bare: {', '.join(f'{r:.2f}' for r in floor_rounds)}; syncd vs floor: "
        f"{', '.join(f'{r:.2f}' for r in of_floor)}",
        f"vendor.app_devices rows {stored}, distinct devices answered Success {len(devices)}: "
        f"{'ok' if consistent else 'MISMATCH'}; history rows {history}; {batches} upsert "
        f"batches for {WARMUP + registry.requests} registrations",
    ])

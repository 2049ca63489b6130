"""`registry`: `POST /v2/device` on the real app against a bare aiohttp handler under the same load.

Same method as `bench.ingest`: both servers in this process on 127.0.0.1 with the same AppRunner
settings, load from a `bench.regload` subprocess (64 keep-alive connections), alternating rounds
after one warm-up each. syncd's side validates, normalises, upserts by MAC with group commit and
answers the documented envelope after COMMIT; the bare side reads the body and answers static
JSON. The rate limit is lifted (all the load comes from one address). Afterwards
vendor.app_devices must hold exactly the distinct devices syncd answered "Success" for.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bench.common import Postgres, Report, run_json
from bench.ingest import Side, served
from syncd import heap
from syncd.app import create_app
from syncd.registry.routes import REGISTRY
from syncd.settings import Settings

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
    """Measure both servers under the same load and compare their throughput."""
    bare, registry = Side("bare aiohttp"), Side("syncd /v2/device")
    devices: set[int] = set()
    batches = 0
    async with pg.database("registry") as dsn:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            app = create_app(syncd_settings(dsn, Path(tmp)))
            async with served(bare_app()) as bare_port, served(app) as syncd_port:
                heap.settle()  # as `syncd run` does once it listens (both sides share the process)
                bare_url = f"http://127.0.0.1:{bare_port}{ROUTE}"
                syncd_url = f"http://127.0.0.1:{syncd_port}{ROUTE}"
                await _load(bare_url, WARMUP, 0)
                warm = await _load(syncd_url, WARMUP, 0)
                if warm["stored"] == WARMUP:
                    devices.update(range(WARMUP))
                offset = WARMUP // 2
                for _ in range(ROUNDS):
                    cpu = time.process_time()
                    bare.add(await _load(bare_url, REQUESTS, offset), time.process_time() - cpu)
                    cpu = time.process_time()
                    result = await _load(syncd_url, REQUESTS, offset)
                    registry.add(result, time.process_time() - cpu)
                    if result["stored"] == REQUESTS:
                        devices.update(range(offset, offset + REQUESTS))
                    offset += REQUESTS // 2
                batches = app[REGISTRY].writer.batches
        conn = await asyncpg.connect(dsn)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM vendor.app_devices"))
            history = int(await conn.fetchval("SELECT count(*) FROM vendor.app_device_history"))
        finally:
            await conn.close()
    per_round = sorted(d / b for d, b in zip(registry.rounds, bare.rounds, strict=True))
    ratio = per_round[len(per_round) // 2]
    overall = registry.throughput / bare.throughput if bare.throughput else 0.0
    consistent = stored == len(devices) and registry.not_ok == 0
    return Report("registry_vs_bare", f"{ratio:.2f}", f"≥ {TARGET}", ratio >= TARGET and consistent, [
        f"{CONCURRENCY} connections, {ROUNDS} alternating rounds of {REQUESTS} registrations per "
        f"side after {WARMUP} warm-up (each round re-posts half the previous round's devices, "
        "a tenth of the bodies with another app_version); load from a separate process",
        bare.detail(),
        registry.detail(),
        f"ratio = median of the rounds' ratios ({', '.join(f'{r:.2f}' for r in per_round)}); "
        f"ratio of the totals {overall:.2f}",
        f"vendor.app_devices rows {stored}, distinct devices answered Success {len(devices)}: "
        f"{'ok' if consistent else 'MISMATCH'}; history rows {history}; {batches} upsert "
        f"batches for {WARMUP + registry.requests} registrations",
    ])

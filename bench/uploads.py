"""`uploads_vs_floor`: `neolock-uploads` end to end against a hand-built floor, 100k devices.

A NeoLock simulator with 100k uploaded devices runs in its own process (`bench.simserver`, limit
lifted to 10,000/s so that the vendor's limiter is not what is measured; syncd keeps its own
configured pacing, 90/s). In the same run, on fresh databases, each round times:

- the floor: plain aiohttp GETs of every page (1,000 rows, one after another), `json.loads`, one
  asyncpg COPY of every row into a temp table, one `INSERT … ON CONFLICT … DO UPDATE … WHERE … IS
  DISTINCT FROM` into vendor.phone_uploads, one transaction;
- the job: `NeoLockUploadsJob.run()` as the daemon runs it (client, pacer, retries, cursor).

Both run a first sync into an empty table and a no-change re-sync. The value is the worst of the
two median ratios (job seconds / floor seconds) over the rounds. A last detail line runs the job
once more against the real 100/s limit and reports its 429s (there must be none).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg

from bench.common import REPO_ROOT, Postgres, Report, subprocess_env
from bench.memsync import SIM_LOGIN, SIM_PASSWORD

DEVICES = 100_000
ROUNDS = int(__import__("os").environ.get("BENCH_UPLOADS_ROUNDS", "2"))
PAGE = 1000
TARGET = 1.3
UNLIMITED = 10_000

COLUMNS = ("provider", "device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model",
           "upload_status", "status", "raw")
FLOOR_MERGE = f"""
INSERT INTO vendor.phone_uploads AS t ({', '.join(COLUMNS)}, first_seen_at, last_seen_at,
    last_changed_at)
SELECT {', '.join(COLUMNS)}, now(), now(), now() FROM floor_stage
ON CONFLICT (provider, device_uid, upload_id) DO UPDATE SET
    {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS[3:])}, last_seen_at = EXCLUDED.last_seen_at,
    last_changed_at = EXCLUDED.last_changed_at
WHERE ROW({', '.join(f't.{c}' for c in COLUMNS[3:])})
    IS DISTINCT FROM ROW({', '.join(f'EXCLUDED.{c}' for c in COLUMNS[3:])})
"""


@contextlib.asynccontextmanager
async def simulator(devices: int, rate_limit: int) -> AsyncIterator[str]:
    """Start `bench.simserver`; yield its base URL; stop it when the block ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.simserver", str(devices), "0", str(rate_limit),
        cwd=REPO_ROOT, env=subprocess_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 180)
        if not line:
            raise RuntimeError("bench.simserver exited before it listened")
        yield str(json.loads(line)["url"])
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def floor(url: str, dsn: str) -> dict[str, Any]:
    """The floor: fetch every page, one COPY, one merge, one transaction. Seconds and rows."""
    began = time.perf_counter()
    basic = base64.b64encode(f"{SIM_LOGIN}:{SIM_PASSWORD}".encode()).decode()
    rows: list[tuple[Any, ...]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/clients/token",
                               headers={"Authorization": f"Basic {basic}"}) as resp:
            answer = json.loads(await resp.read())
        token = (answer.get("data") or answer)["access_token"]
        page = 0
        while True:
            async with session.get(url + "/clients/devices/uploads",
                                   params={"pageNum": str(page), "pageSize": str(PAGE)},
                                   headers={"x-knox-apitoken": token}) as resp:
                data = json.loads(await resp.read())["data"]
            rows.extend(("neolock", r["deviceUid"], r.get("uploadID") or "", r.get("id"),
                         r.get("imei"), r.get("imei2"), r.get("serial"), r.get("model"),
                         r.get("uploadStatus"), r.get("status"), r) for r in data)
            if len(data) < PAGE:
                break
            page += 1
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec("jsonb", encoder=lambda v: b"\x01" + json.dumps(v).encode(),
                                  decoder=lambda b: json.loads(b[1:]), schema="pg_catalog",
                                  format="binary")
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE floor_stage ON COMMIT DROP AS SELECT "
                               f"{', '.join(COLUMNS)} FROM vendor.phone_uploads WITH NO DATA")
            await conn.copy_records_to_table("floor_stage", records=rows, columns=COLUMNS)
            status = await conn.execute(FLOOR_MERGE)
    finally:
        await conn.close()
    return {"seconds": time.perf_counter() - began, "rows": len(rows),
            "written": int(status.split()[-1]), "requests": page + 2}


async def job(url: str, dsn: str, rate: float = 90.0) -> dict[str, Any]:
    """`NeoLockUploadsJob` as the daemon runs it, timed from the run's start to its end."""
    from syncd.db.pool import Database
    from syncd.runtime import open_http
    from syncd.settings.vendors import NeoLockSettings
    from syncd.sync.base import RunContext
    from syncd.sync.neolock import NeoLockUploadsJob, neolock_client
    from syncd.vendors import usage

    settings = NeoLockSettings(base_url=url, login=SIM_LOGIN, password=SIM_PASSWORD,
                               rate_limit=rate)
    db = await Database.connect(dsn, min_size=1, max_size=4)
    try:
        async with open_http() as session:
            the_job = NeoLockUploadsJob(db, neolock_client(settings, session))
            ctx = RunContext(db, the_job.name)
            began = time.perf_counter()
            with usage.counting(ctx.usage):  # as the job runner does: requests count to this run
                await the_job.run(ctx)
            seconds = time.perf_counter() - began
        async with db.connection() as conn:
            rows = int(await conn.fetchval("SELECT count(*) FROM vendor.phone_uploads"))
    finally:
        await db.close()
    return {"seconds": seconds, "rows": rows, "requests": ctx.requests}


async def table_digest(dsn: str) -> str:
    """An order-independent digest of vendor.phone_uploads' data columns."""
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval(
            f"SELECT md5(string_agg(md5(row({', '.join(COLUMNS)})::text), '' ORDER BY "
            "device_uid, upload_id)) FROM vendor.phone_uploads"))
    finally:
        await conn.close()


async def run(pg: Postgres) -> Report:
    """Rounds of floor and job, first sync and no-change re-sync, side by side."""
    ratios: dict[str, list[float]] = {"first": [], "no-change": []}
    details: list[str] = []
    async with simulator(DEVICES, UNLIMITED) as url:
        for round_ in range(ROUNDS):
            async with pg.database(f"upl_floor{round_}") as fdsn, \
                    pg.database(f"upl_job{round_}") as jdsn:
                times: dict[str, dict[str, Any]] = {}
                for kind in ("first", "no-change"):
                    order = ("floor", "job") if round_ % 2 == 0 else ("job", "floor")
                    for side in order:
                        result = await (floor(url, fdsn) if side == "floor" else job(url, jdsn))
                        times[f"{side} {kind}"] = result
                    ratios[kind].append(times[f"job {kind}"]["seconds"]
                                        / times[f"floor {kind}"]["seconds"])
                same = await table_digest(fdsn) == await table_digest(jdsn)
                details.append(
                    f"round {round_ + 1}: " + ", ".join(
                        f"{k} {v['seconds']:.2f} s" for k, v in times.items())
                    + f"; job requests {times['job first']['requests']}"
                    + f"/{times['job no-change']['requests']}; tables identical: {same}")
    async with simulator(DEVICES, 100) as url, pg.database("upl_paced") as dsn:
        paced = await job(url, dsn, rate=90.0)
        details.append(f"against the real 100/s limit: {paced['seconds']:.2f} s, "
                       f"{paced['requests']} requests, {paced['rows']} rows")
    first, again = statistics.median(ratios["first"]), statistics.median(ratios["no-change"])
    details.insert(0, "job/floor ratios: first " + ", ".join(f"{r:.2f}" for r in ratios["first"])
                   + "; no-change " + ", ".join(f"{r:.2f}" for r in ratios["no-change"]))
    worst = max(first, again)
    return Report("uploads_vs_floor", f"{worst:.2f} (first {first:.2f}, no-change {again:.2f})",
                  f"≤ {TARGET}", worst <= TARGET, details)

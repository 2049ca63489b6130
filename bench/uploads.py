"""`uploads_vs_floor`: `syncd sync neolock-uploads --once` end to end against a hand-built floor,
100k devices, each a process of its own, timed from spawn to exit.

A NeoLock simulator with 100k uploaded devices runs in its own process (`bench.simserver`, limit
lifted to 10,000/s so that the vendor's limiter is not what is measured; syncd keeps its own
configured pacing, 90/s). In the same run, on fresh databases, each round times, as the wall
time of a fresh process (interpreter start and imports included: what an operator, or a systemd
timer, sees):

- the floor: `python -m bench.upload_floor` (plain aiohttp GETs of every page, `json.loads`, one
  asyncpg COPY into a temp table, one `INSERT … ON CONFLICT … DO UPDATE … WHERE … IS DISTINCT
  FROM`, one transaction; nothing of syncd imported);
- syncd: `python -m syncd sync neolock-uploads --once`, configured by a TOML file, as an operator
  runs it (client, pacer, retries, cursor, run record).

Both run a first sync into an empty table and a no-change re-sync; the sides alternate which goes
first. The value is the worse of the two median ratios (syncd wall / floor wall). The details
split each wall time into the work (the job's own seconds, as `syncd sync` prints them; the
floor's, as it prints them) and the rest (start-up and exit), and give the same comparison in
this process (`NeoLockUploadsJob.run()` against the floor's function: no start-up on either side).
A last detail line runs the job once more against the real 100/s limit and reports its requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import REPO_ROOT, Postgres, Report, subprocess_env
from bench.memsync import SIM_LOGIN, SIM_PASSWORD
from bench.servers import write_config
from bench.upload_floor import COLUMNS, floor

DEVICES = 100_000
ROUNDS = int(os.environ.get("BENCH_UPLOADS_ROUNDS", "5"))  # the machine swings 2x
TARGET = 1.3
UNLIMITED = 10_000
_JOB_LINE = re.compile(r"^neolock-uploads: (\w+) items=(\d+) requests=(\d+) ([\d.]+)s", re.M)


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


async def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `argv` to completion: (wall seconds from spawn to exit, stdout). Raises on failure."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO_ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:4])} exited with {proc.returncode}: "
                           f"{err.decode()[-300:]}")
    return wall, out.decode()


async def floor_process(url: str, dsn: str) -> dict[str, Any]:
    """`python -m bench.upload_floor`: its wall time and the seconds it reports for its work."""
    wall, out = await _timed([sys.executable, "-m", "bench.upload_floor", url, dsn],
                             subprocess_env())
    result = json.loads(out.strip().splitlines()[-1])
    return {"wall": wall, "work": float(result["seconds"]), "rows": int(result["rows"])}


async def syncd_process(url: str, dsn: str, workdir: Path) -> dict[str, Any]:
    """`python -m syncd sync neolock-uploads --once`: its wall time and the job's own seconds."""
    config = workdir / "syncd.toml"
    write_config(config, {"database": {"url": dsn},
                          "neolock": {"base_url": url, "login": SIM_LOGIN,
                                      "password": SIM_PASSWORD}})
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("SYNCD_")}
    env.update(SYNCD_CONFIG=str(config), SYNCD_DATA_DIR=str(workdir))
    wall, out = await _timed([sys.executable, "-m", "syncd", "sync", "neolock-uploads", "--once"],
                             env)
    match = _JOB_LINE.search(out)
    if match is None or match.group(1) != "ok":
        raise RuntimeError(f"syncd sync did not report a good run: {out[-300:]!r}")
    return {"wall": wall, "work": float(match.group(4)), "rows": int(match.group(2)),
            "requests": int(match.group(3))}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run(pg: Postgres) -> Report:
    """Rounds of floor and syncd processes, first sync and no-change re-sync, side by side;
    then the same in this process."""
    kinds = ("first", "no-change")
    walls: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {k: [] for k in kinds} for side in ("floor", "syncd")}
    inproc: dict[str, list[float]] = {k: [] for k in kinds}
    details: list[str] = []
    async with simulator(DEVICES, UNLIMITED) as url:
        for round_ in range(ROUNDS):
            order = ("floor", "syncd") if round_ % 2 == 0 else ("syncd", "floor")
            async with pg.database(f"upl_floor{round_}") as fdsn, \
                    pg.database(f"upl_job{round_}") as jdsn:
                with tempfile.TemporaryDirectory(prefix="sb-") as tmp:
                    for kind in kinds:
                        for side in order:
                            result = await (floor_process(url, fdsn) if side == "floor"
                                            else syncd_process(url, jdsn, Path(tmp)))
                            walls[side][kind].append(result)
                same = await table_digest(fdsn) == await table_digest(jdsn)
            rounds = {f"{side} {kind}": walls[side][kind][-1] for kind in kinds
                      for side in order}
            details.append(
                f"round {round_ + 1}: " + ", ".join(
                    f"{k} {v['wall']:.2f} s (work {v['work']:.2f})" for k, v in rounds.items())
                + f"; syncd requests {rounds['syncd first']['requests']}/"
                + f"{rounds['syncd no-change']['requests']}; tables identical: {same}")
            # The same comparison in this process: no interpreter start on either side.
            async with pg.database(f"upl_ifloor{round_}") as fdsn, \
                    pg.database(f"upl_ijob{round_}") as jdsn:
                for kind in kinds:
                    times = {}
                    for side in order:
                        times[side] = (await (floor(url, fdsn) if side == "floor"
                                              else job(url, jdsn)))["seconds"]
                    inproc[kind].append(times["syncd"] / times["floor"])
    async with simulator(DEVICES, 100) as url, pg.database("upl_paced") as dsn:
        paced = await job(url, dsn, rate=90.0)
        details.append(f"against the real 100/s limit (in this process): {paced['seconds']:.2f} "
                       f"s, {paced['requests']} requests, {paced['rows']} rows")
    ratio = {k: _median([s["wall"] / f["wall"] for s, f in
                         zip(walls["syncd"][k], walls["floor"][k], strict=True)]) for k in kinds}
    rest = {side: _median([r["wall"] - r["work"] for k in kinds for r in walls[side][k]])
            for side in walls}
    work = {k: _median([s["work"] / f["work"] for s, f in
                        zip(walls["syncd"][k], walls["floor"][k], strict=True)]) for k in kinds}
    details[:0] = [
        "syncd/floor wall time by round: first " + ", ".join(
            f"{s['wall'] / f['wall']:.2f}" for s, f in zip(walls["syncd"]["first"],
                                                            walls["floor"]["first"], strict=True))
        + "; no-change " + ", ".join(
            f"{s['wall'] / f['wall']:.2f}" for s, f in zip(
                walls["syncd"]["no-change"], walls["floor"]["no-change"], strict=True)),
        f"start-up and exit (wall minus work, median): syncd {rest['syncd']:.2f} s, floor "
        f"{rest['floor']:.2f} s; work alone syncd/floor: first {work['first']:.2f}, no-change "
        f"{work['no-change']:.2f}",
        f"in this process (no start-up), job/floor: first {_median(inproc['first']):.2f}, "
        f"no-change {_median(inproc['no-change']):.2f}",
    ]
    worst = max(ratio.values())
    first, again = ratio["first"], ratio["no-change"]
    syncd_walls = {k: _median([r["wall"] for r in walls["syncd"][k]]) for k in kinds}
    floor_walls = {k: _median([r["wall"] for r in walls["floor"][k]]) for k in kinds}
    return Report(
        "uploads_vs_floor",
        f"{worst:.2f} (first {first:.2f}: {syncd_walls['first']:.2f} s vs "
        f"{floor_walls['first']:.2f} s; no-change {again:.2f}: {syncd_walls['no-change']:.2f} s "
        f"vs {floor_walls['no-change']:.2f} s; of syncd's, start-up and exit "
        f"{rest['syncd']:.2f} s)",
        f"≤ {TARGET}, process wall time", worst <= TARGET, details)

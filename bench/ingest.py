"""`ingest`: durable webhook intake on the real daemon against a hand-built durable floor and bare
aiohttp, each server in a process of its own, driven by wrk.

- bare: `python -m bench.serve bare ingest`: reads the body, answers 200 JSON, stores nothing;
- floor: `python -m bench.serve floor ingest DSN` (bench/floors.py): json.loads, syncd's own
  `ops.inbox` INSERT behind a minimal group commit, 200 after COMMIT, nothing else;
- syncd: `python -m syncd run` with NeoLock configured (intake and the inbox worker on; the
  worker's vendor is a closed port, so it backs off and stays out of the measurement) and every
  job off, at log level warning (no line a push: like the floor) — the targets are judged on it;
- syncd at info, its default, which logs one access line a push: a fourth side, reported beside.

Load: wrk, 64 keep-alive connections, bench/wrk/ingest.lua (NeoLock push bodies shaped like the
simulator's, every push its own id). A warm-up, then 7 interleaved rounds of 3 s per side; each
side's CPU time per request is read from /proc/PID/stat. Afterwards each syncd's ops.inbox must
hold exactly the pushes it answered `stored` (its syncd_events counter), and every `stored`
answer wrk read must be among them (wrk stops mid-flight: the answers to up to 64 pushes a run
are written after it stopped reading).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import asyncpg

from bench import sides
from bench.common import Postgres, Report, free_port
from bench.load import push_bodies
from bench.servers import (
    Round,
    Server,
    bench_server,
    counter,
    drive,
    load_generator,
    syncd_server,
)

HOOK = "/hooks/neolock/{secret}"
BARE_GOAL = 0.75  # syncd/bare, kept for the record
JOBS_OFF = ("housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")
LOG_LEVEL = os.environ.get("BENCH_SYNCD_LOG_LEVEL", "warning")  # judged; info beside it
TEMPLATES = 256  # distinct push bodies (device, transition) the Lua script cycles through


def syncd_config(dsn: str, secret: str, log_level: str = LOG_LEVEL) -> dict[str, dict[str, object]]:
    """syncd with NeoLock configured (so intake and the inbox worker run) and every job off."""
    return {
        "database": {"url": dsn},
        "logging": {"level": log_level, "format": "json"},
        "neolock": {"base_url": f"http://127.0.0.1:{free_port()}/api", "login": "bench",
                    "password": "bench-password", "webhook_secret": secret},
        **{f"jobs.{name}": {"enabled": False} for name in JOBS_OFF},
    }


def write_templates(path: Path, count: int = TEMPLATES) -> None:
    """Push bodies for the Lua script: each cut where its id goes (before, a tab, after)."""
    lines = []
    for body in push_bodies(count):
        doc = json.loads(body)
        text = json.dumps({**doc, "id": "\x00"}, separators=(",", ":"))
        before, after = text.split("\\u0000")
        lines.append(f"{before}\t{after}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def _stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ops.inbox"))
    finally:
        await conn.close()


async def run(pg: Postgres) -> Report:
    """Measure the servers under the same load; check ops.inbox against the answers."""
    secret = secrets.token_urlsafe(24)
    path = HOOK.format(secret=secret)
    tag = f"{os.getpid()}-{int(time.time())}"
    async with pg.database("ingest") as dsn, pg.database("ingest_info") as info_dsn, \
            pg.database("ingest_floor") as floor_dsn:
        with tempfile.TemporaryDirectory(prefix="sb-") as tmp, \
                tempfile.TemporaryDirectory(prefix="sb-") as info_tmp:
            templates = Path(tmp) / "pushes.txt"
            write_templates(templates)

            async def load(server: Server, number: int, seconds: float) -> Round:
                return await drive(server, "ingest.lua", seconds,
                                   [str(templates), f"{tag}-{number}"], ("bench.load", []))

            async with bench_server("bare", "ingest", path) as bare_server, \
                    bench_server("floor", "ingest", path, floor_dsn) as floor_server, \
                    syncd_server(Path(tmp), path, syncd_config(dsn, secret)) as syncd_proc, \
                    syncd_server(Path(info_tmp), path,
                                 syncd_config(info_dsn, secret, "info")) as info_proc:
                bare, floor, syncd, info = (
                    sides.Side(bare_server, "bare aiohttp"),
                    sides.Side(floor_server, "hand-built floor"),
                    sides.Side(syncd_proc, f"syncd run (log level {LOG_LEVEL})"),
                    sides.Side(info_proc, "syncd run (log level info: an access line a push)"))
                await sides.interleave([bare, floor, syncd, info], load)
                answered = [int(await counter(server.url, "syncd_events_total",
                                              source="neolock", outcome="stored"))
                            for server in (syncd_proc, info_proc)]
        stored = [await _stored(dsn), await _stored(info_dsn)]
    checks = [sides.consistency(side, n, rows, "ops.inbox", "pushes syncd answered stored")
              for side, n, rows in zip((syncd, info), answered, stored, strict=True)]
    v = sides.verdict(bare, floor, syncd)
    return Report("ingest", sides.summary(v, BARE_GOAL), sides.TARGET,
                  v.met and all(ok for ok, _ in checks), [
        f"load: {load_generator()}; {sides.method()}; each server in its own process; "
        f"the targets are judged on syncd at log level {LOG_LEVEL} (no line a push, like the "
        "floor); the same daemon at info is measured beside it",
        bare.detail(), floor.detail(), syncd.detail(), info.detail(), *sides.ratio_details(v),
        sides.also(info, bare, floor),
        *(line for _, line in checks),
    ])

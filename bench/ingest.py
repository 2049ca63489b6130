"""`ingest`: durable webhook intake (parse, group commit, ack) against a bare aiohttp 200-OK handler
and a hand-built durable floor (bench/floors.py).

The servers run in this process on 127.0.0.1 with the same AppRunner settings; the load comes from
a `bench.load` subprocess (64 keep-alive connections). Rounds alternate bare/floor/syncd after one
warm-up each, so drift in the machine's speed hits every side alike. Afterwards ops.inbox must
hold exactly the events syncd acknowledged as stored.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from bench import floors
from bench.common import Postgres, Report, free_port, percentile, run_json
from syncd import heap
from syncd.app import create_app
from syncd.settings.core import Settings

CONCURRENCY = 64
REQUESTS = 2000  # per measured round and side
ROUNDS = 5  # short alternating rounds, so noise from other work on the machine hits both sides
WARMUP = 640
TARGET = 0.75  # the median of the rounds' ratios
ROUND_FLOOR = 0.6  # and no round below this
P99_FACTOR, P99_SLACK_MS = 3.0, 5.0  # syncd's p99 at most 3 × bare's + 5 ms
HOOK = "/hooks/neolock/{secret}"
JOBS_OFF = ("housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")


def syncd_settings(dsn: str, data_dir: Path, secret: str) -> Settings:
    """syncd with NeoLock configured (so intake and the inbox worker run) and every job disabled.

    base_url points at a closed port: the inbox worker's device GETs fail fast and back off, so it
    stays out of the measurement instead of competing with intake for the CPU.
    """
    return Settings(
        data_dir=data_dir,
        database={"url": dsn},
        server={"host": "127.0.0.1", "port": 0, "shutdown_timeout": 5},
        jobs={name: {"enabled": False} for name in JOBS_OFF},
        neolock={"base_url": f"http://127.0.0.1:{free_port()}/api", "login": "bench",
                 "password": "bench-password", "webhook_secret": secret},
    )


def bare_app(max_body: int) -> web.Application:
    """An app whose hook handler reads the body and answers 200 JSON, nothing else."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "stored"})

    app = web.Application(client_max_size=max_body)
    app.router.add_post(HOOK, hook)
    return app


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1, a free port, as `syncd run` does; yield the port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        yield int(sockets[0].getsockname()[1])
    finally:
        await runner.cleanup()


def _ms(x: float) -> str:
    return f"{x:.1f} ms"


class Side:
    """What one server accumulated over the measured rounds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.not_ok = 0
        self.client_cpu = 0.0
        self.server_cpu = 0.0
        self.rounds: list[float] = []

    def add(self, result: dict[str, Any], server_cpu: float) -> None:
        """Fold one load run's JSON result (and this process's CPU time during it) in."""
        self.requests += int(result["requests"])
        self.seconds += float(result["seconds"])
        self.client_cpu += float(result["cpu_seconds"])
        self.server_cpu += server_cpu
        self.rounds.append(int(result["requests"]) / float(result["seconds"]))
        self.latencies.extend(float(x) for x in result["latencies_ms"])
        self.not_ok += sum(n for status, n in result["statuses"].items() if status != "200")

    @property
    def throughput(self) -> float:
        """Requests per second over every measured round."""
        return self.requests / self.seconds if self.seconds else 0.0

    def detail(self) -> str:
        """Throughput and latency percentiles on one line."""
        errors = f", {self.not_ok} not 200" if self.not_ok else ""
        return (f"{self.name}: {self.throughput:,.0f} req/s, p50 {_ms(percentile(self.latencies, 50))}"
                f", p99 {_ms(percentile(self.latencies, 99))} ({self.requests} requests{errors}); "
                f"server CPU {self.server_cpu / max(self.requests, 1) * 1000:.2f} ms a request; "
                f"CPU busy: server process {self.server_cpu / self.seconds:.0%}, "
                f"load generator {self.client_cpu / self.seconds:.0%}")


async def _measure(side: Side, url: str) -> int:
    """One measured round against `url`; return how many events were acknowledged as stored."""
    cpu = time.process_time()
    result = await _load(url, REQUESTS)
    side.add(result, time.process_time() - cpu)
    return int(result["stored"])


async def _load(url: str, total: int) -> dict[str, Any]:
    return await run_json("bench.load", url, str(total), str(CONCURRENCY), timeout=180)


def ratios(side: Side, base: Side) -> list[float]:
    """The paired rounds' throughput ratios side/base, sorted (the median is the middle one)."""
    return sorted(d / b for d, b in zip(side.rounds, base.rounds, strict=True))


async def run(pg: Postgres) -> Report:
    """Measure the three servers under the same load and compare their throughput."""
    secret = secrets.token_urlsafe(24)
    bare, floor, durable = Side("bare aiohttp"), Side("hand-built floor"), Side("syncd intake")
    acknowledged = 0
    async with pg.database("ingest") as dsn, pg.database("ingest_floor") as floor_dsn:
        pool = await asyncpg.create_pool(floor_dsn, min_size=2, max_size=4)
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            settings = syncd_settings(dsn, Path(tmp), secret)
            app = create_app(settings)
            async with served(bare_app(settings.server.max_body_bytes)) as bare_port, \
                    served(floors.ingest_floor(pool, HOOK)) as floor_port, \
                    served(app) as syncd_port:
                heap.settle()  # as `syncd run` does once it listens (all sides share the process)
                path = HOOK.format(secret=secret)
                bare_url, floor_url, syncd_url = (f"http://127.0.0.1:{port}{path}" for port in
                                                  (bare_port, floor_port, syncd_port))
                await _load(bare_url, WARMUP)
                await _load(floor_url, WARMUP)
                acknowledged += int((await _load(syncd_url, WARMUP))["stored"])
                for _ in range(ROUNDS):
                    await _measure(bare, bare_url)
                    await _measure(floor, floor_url)
                    acknowledged += await _measure(durable, syncd_url)
        await pool.close()
        conn = await asyncpg.connect(dsn)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM ops.inbox"))
        finally:
            await conn.close()
    # The median of the paired rounds' ratios: one round disturbed by other work on the machine
    # moves it less than it moves the ratio of the totals (which is shown too).
    per_round, floor_rounds, of_floor = (ratios(durable, bare), ratios(floor, bare),
                                         ratios(durable, floor))
    ratio, mid = per_round[ROUNDS // 2], ROUNDS // 2
    overall = durable.throughput / bare.throughput if bare.throughput else 0.0
    consistent = stored == acknowledged and durable.not_ok == 0
    check = "ok" if consistent else "MISMATCH"
    p99, bare_p99 = percentile(durable.latencies, 99), percentile(bare.latencies, 99)
    p99_limit = P99_FACTOR * bare_p99 + P99_SLACK_MS
    met = ratio >= TARGET and per_round[0] >= ROUND_FLOOR and p99 <= p99_limit and consistent
    return Report(
        "ingest_vs_bare", f"{ratio:.2f} (worst round {per_round[0]:.2f}; p99 {_ms(p99)} vs "
        f"limit {_ms(p99_limit)}; hand-built floor {floor_rounds[mid]:.2f}, syncd/floor "
        f"{of_floor[mid]:.2f})",
        f"≥ {TARGET}, every round ≥ {ROUND_FLOOR}, p99 ≤ {P99_FACTOR:g} × bare + "
        f"{P99_SLACK_MS:g} ms", met, [
        f"{CONCURRENCY} connections, {ROUNDS} alternating rounds of {REQUESTS} requests per side "
        f"after {WARMUP} warm-up; load from a separate process",
        bare.detail(),
        floor.detail(),
        durable.detail(),
        f"ratio = median of the rounds' ratios ({', '.join(f'{r:.2f}' for r in per_round)}); "
        f"ratio of the totals {overall:.2f}",
        f"hand-built floor (bench/floors.py: same INSERT, minimal group commit, nothing else) "
        f"vs bare: {', '.join(f'{r:.2f}' for r in floor_rounds)}; syncd vs floor: "
        f"{', '.join(f'{r:.2f}' for r in of_floor)}",
        f"ops.inbox rows {stored}, acknowledged as stored {acknowledged}: {check}",
    ])

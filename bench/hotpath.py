"""`hotpath`: the Python work one request costs on the hot routes, counted rather than timed.

Throughput on a shared 2-core machine swings 2x between rounds; the bytecode a request executes
does not. So this bench serves the same requests to syncd's own app (`create_app`, started as
`syncd run` starts it, on a real PostgreSQL, every job off) and to the hand-built floors of
bench/floors.py, in this process, and counts with `sys.settrace` every Python opcode and call
executed from the request's arrival at the application (routing, syncd's bookkeeping, the
handler, the group commit and its INSERT or upsert) to its response, 64 requests at a time so
batches form as under load. What runs in C (the JSON decoder, asyncpg's protocol, the socket)
is not counted: this is the share syncd's own code can change, and the share that separates it
from the floor (the `ingest` and `registry` benches time the whole).

Requests are built as aiohttp's protocol builds them (a parsed message and a fed payload) and
handed to the application; nothing is sent over a socket. Both sides get identical requests.
The target is a budget over the floor's count, so that a change that adds work to every request
shows up here as MISSED whatever the machine is doing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
from aiohttp import HttpVersion11, streams, web
from aiohttp.http_parser import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bench import ingest, registry
from bench.common import Postgres, Report
from bench.floors import ingest_floor, registry_floor
from bench.load import push_bodies
from bench.regload import registration
from bench.servers import write_config

BUDGET = 1.75  # syncd's opcodes a request over the floor's, at most (see bench/README.md)
CONCURRENCY = 64  # requests in flight at once, as wrk's connections
WARMUP = 640
COUNTED = 1280


class _Protocol:
    """What a request and its payload reader ask of the connection's protocol."""

    listener = "public"  # syncd's public listener (syncd.web.server.listener_of)
    transport = None
    ssl_context = None
    peername = ("127.0.0.1", 50000)
    sockname = ("127.0.0.1", 8080)
    _reading_paused = False

    def pause_reading(self, **_: Any) -> None:
        """A full payload buffer would pause the socket: there is none."""

    def resume_reading(self, **_: Any) -> None:
        """Nor anything to resume."""


def _request(path: str, body: bytes, loop: asyncio.AbstractEventLoop) -> web.Request:
    """A POST of `body` to `path` as aiohttp's protocol hands it to the application."""
    protocol = _Protocol()
    payload = streams.StreamReader(protocol, 2**16, loop=loop)  # type: ignore[arg-type]
    payload.feed_data(body)
    payload.feed_eof()
    headers = CIMultiDictProxy(CIMultiDict({
        "Host": "127.0.0.1", "Content-Type": "application/json",
        "Content-Length": str(len(body))}))
    message = RawRequestMessage("POST", path, HttpVersion11, headers, (), False, None, False,
                                False, URL(path))
    return web.Request(message, payload, protocol, None, None, loop)  # type: ignore[arg-type]


class Count:
    """Opcodes and calls executed while tracing, outside this module."""

    def __init__(self) -> None:
        self.opcodes: collections.Counter[str] = collections.Counter()
        self.calls = 0

    def tracer(self, frame: FrameType, event: str, _arg: Any) -> Any:
        if frame.f_code.co_filename == __file__:
            return None  # the harness's own lines are not the request's
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.opcodes[frame.f_code.co_filename] += 1
        elif event == "call":
            self.calls += 1
        return self.tracer

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        sys.settrace(self.tracer)
        try:
            yield
        finally:
            sys.settrace(None)


async def _serve(app: web.Application, path: str, bodies: list[bytes], first: int,
                 count: int) -> None:
    """Hand `count` requests to `app`, CONCURRENCY at a time; each must be answered 200."""
    loop = asyncio.get_running_loop()
    numbers = iter(range(first, first + count))

    async def one_client() -> None:
        for n in numbers:
            # the application entry aiohttp's protocol calls for each request
            response = await app._handle(_request(path, bodies[n], loop))
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")

    await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))


async def _measure(app: web.Application, path: str, bodies: list[bytes]) -> tuple[float, float]:
    """Opcodes and calls a request, over COUNTED requests after WARMUP."""
    await _serve(app, path, bodies, 0, WARMUP)
    count = Count()
    with count.tracing():
        await _serve(app, path, bodies, WARMUP, COUNTED)
    return sum(count.opcodes.values()) / COUNTED, count.calls / COUNTED


@contextlib.asynccontextmanager
async def _started(app: web.Application) -> AsyncIterator[web.Application]:
    runner = web.AppRunner(app)
    await runner.setup()  # runs the app's start-up, as a listening daemon's does
    try:
        yield app
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _syncd(workdir: Path, sections: dict[str, dict[str, Any]]
                 ) -> AsyncIterator[web.Application]:
    """syncd's app from a config file of `sections`, started."""
    from syncd.app import create_app
    from syncd.settings.core import load

    config = workdir / "syncd.toml"
    # logging stays as the bench set it (create_app configures none); data_dir is the file's
    write_config(config, {"server": {"host": "127.0.0.1", "port": 9},
                          **{k: v for k, v in sections.items() if k != "logging"}})
    async with _started(create_app(load(config))) as app:
        yield app


@contextlib.asynccontextmanager
async def _floor(dsn: str, build: Callable[[asyncpg.Pool, str], web.Application],
                 path: str) -> AsyncIterator[web.Application]:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
    try:
        async with _started(build(pool, path)) as app:
            yield app
    finally:
        await pool.close()


def _bodies_with_ids(count: int) -> list[bytes]:
    """Push bodies, every one with an id of its own (a duplicate would take a shorter path)."""
    templates = push_bodies(256)
    tag = secrets.token_hex(4)
    return [templates[n % len(templates)].replace(b'"id":"', f'"id":"{tag}-{n}-'.encode(), 1)
            for n in range(count)]


async def run(pg: Postgres) -> Report:
    """Count both routes' work a request on syncd and on its floor."""
    secret = secrets.token_urlsafe(24)
    hook = ingest.HOOK.format(secret=secret)
    total = WARMUP + COUNTED
    pushes = _bodies_with_ids(total)
    offset = int.from_bytes(os.urandom(3), "big") * 16  # MACs of their own for this run
    registrations = [registration(offset + n) for n in range(total)]
    rows: list[tuple[str, tuple[float, float], tuple[float, float]]] = []
    async with pg.database("hotpath_ingest") as ingest_dsn, \
            pg.database("hotpath_ingest_floor") as ingest_floor_dsn, \
            pg.database("hotpath_registry") as registry_dsn, \
            pg.database("hotpath_registry_floor") as registry_floor_dsn:
        with tempfile.TemporaryDirectory(prefix="sb-") as tmp:
            async with _syncd(Path(tmp), ingest.syncd_config(ingest_dsn, secret)) as app, \
                    _floor(ingest_floor_dsn, ingest_floor, hook) as floor:
                rows.append(("ingest", await _measure(app, hook, pushes),
                             await _measure(floor, hook, pushes)))
        with tempfile.TemporaryDirectory(prefix="sb-") as tmp:
            async with _syncd(Path(tmp), registry.syncd_config(registry_dsn)) as app, \
                    _floor(registry_floor_dsn, registry_floor, registry.ROUTE) as floor:
                rows.append(("registry", await _measure(app, registry.ROUTE, registrations),
                             await _measure(floor, registry.ROUTE, registrations)))
    ratios = {name: ours[0] / theirs[0] for name, ours, theirs in rows}
    return Report(
        "hotpath", ", ".join(f"{name} {ratio:.2f} × the floor's opcodes"
                             for name, ratio in ratios.items()),
        f"≤ {BUDGET} × the floor's Python opcodes a request, both routes",
        all(ratio <= BUDGET for ratio in ratios.values()), [
            f"counted with sys.settrace over {COUNTED} requests after {WARMUP}, "
            f"{CONCURRENCY} at a time, in process (no socket), real PostgreSQL",
            *(f"{name}: syncd {ours[0]:,.0f} opcodes and {ours[1]:.0f} calls a request, "
              f"the floor {theirs[0]:,.0f} and {theirs[1]:.0f}"
              for name, ours, theirs in rows),
        ])

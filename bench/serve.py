"""`python -m bench.serve SIDE ROUTE [DSN]`: one of the comparison servers, in a process of its own.

SIDE is `bare` (reads the body, answers static JSON, stores nothing) or `floor` (the hand-built
durable handler of bench/floors.py, which needs DSN); ROUTE is `ingest` (`POST
/hooks/neolock/{secret}`) or `registry` (`POST /v2/device`). syncd's side is the real daemon,
`python -m syncd run` (see bench.servers). Each server has a process to itself, so its CPU time
can be read from outside (/proc/PID/stat) and no load generator or other server shares its
event loop. Prints one JSON line `{"port": …}` once it listens, serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg
from aiohttp import web

from bench import floors
from syncd import heap

HOOK = "/hooks/neolock/{secret}"
DEVICE = "/v2/device"
MAX_BODY = 1024 * 1024  # syncd's default server.max_body_bytes


def bare_ingest() -> web.Application:
    """A hook handler that reads the body and answers 200 JSON, nothing else."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "stored"})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(HOOK, hook)
    return app


def bare_registry() -> web.Application:
    """A /v2/device handler that reads the body and answers a static 200 JSON envelope."""

    async def device(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": 200, "message": "Success"})

    app = web.Application()
    app.router.add_post(DEVICE, device)
    return app


async def main(side: str, route: str, dsn: str | None) -> None:
    """Serve the chosen app on 127.0.0.1 (a free port) until stdin closes."""
    pool = None
    if side == "floor":
        if dsn is None:
            raise SystemExit("the floor needs a DSN")
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        app = floors.ingest_floor(pool, HOOK) if route == "ingest" else \
            floors.registry_floor(pool, DEVICE)
    else:
        app = bare_ingest() if route == "ingest" else bare_registry()
    # As syncd's own runner: no access log, signals left alone.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        heap.settle()  # as `syncd run` does once it listens: every side alike
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await asyncio.to_thread(sys.stdin.buffer.read)  # until the benchmark closes our stdin
    finally:
        await runner.cleanup()
        if pool is not None:
            await pool.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("bare", "floor") \
            or sys.argv[2] not in ("ingest", "registry"):
        print("usage: python -m bench.serve {bare,floor} {ingest,registry} [DSN]", file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None))

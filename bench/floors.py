"""Hand-built durable handlers: what committing each request to PostgreSQL costs at the least.

The `ingest` and `registry` benchmarks measure syncd against a bare aiohttp handler (nothing
stored) and against these floors: plain aiohttp handlers that decode the body, queue it for a
minimal group commit (up to two batches in flight on an asyncpg pool, the batch grows while
those commit) running the same SQL statement syncd runs, and answer once the batch is
committed. No middleware, no validation beyond what the statement needs, no metrics, no logs.
The gap between bare and floor is the price of durability on the machine; the gap between floor
and syncd is what syncd's own code costs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from syncd.db.queries import get as sql

Write = Callable[[list[Any]], Awaitable[list[Any]]]


class _Batches:
    """The smallest group commit: queued items are written by at most two flushers at a time."""

    def __init__(self, write: Write, in_flight: int = 2) -> None:
        self.write = write
        self.in_flight = in_flight
        self.queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self.active = 0

    def submit(self, item: Any) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.append((item, done))
        if self.active < self.in_flight:
            self.active += 1
            asyncio.get_running_loop().create_task(self._flush())
        return done

    async def _flush(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:512], self.queue[512:]
                try:
                    results = await self.write([item for item, _ in batch])
                except Exception as err:  # handed to every request waiting on the batch
                    for _, done in batch:
                        done.set_exception(err)
                    continue
                for (_, done), result in zip(batch, results, strict=True):
                    done.set_result(result)
        finally:
            self.active -= 1


def ingest_floor(pool: asyncpg.Pool, route: str) -> web.Application:
    """A hook handler: json.loads, the push's id as dedupe key, ops.inbox's batch INSERT."""
    statement = sql("inbox_insert_batch")

    async def write(items: list[tuple[str, str | None, str]]) -> list[bool]:
        rows = await pool.fetch(statement, ["neolock"] * len(items), [i[0] for i in items],
                                [i[1] for i in items], [None] * len(items),
                                [i[2] for i in items])
        new = {r["dedupe_key"] for r in rows}
        return [i[0] in new for i in items]

    batches = _Batches(write)

    async def hook(request: web.Request) -> web.Response:
        text = (await request.read()).decode()
        doc = json.loads(text)
        new = await batches.submit((f"id:{doc['id']}", doc.get("event"), text))
        return web.Response(body=b'{"status":"stored"}' if new else b'{"status":"duplicate"}',
                            content_type="application/json")

    app = web.Application()
    app.router.add_post(route, hook)
    return app


FIELDS = ("mac_address", "device_os", "device_version", "device_type", "app_version", "app_name")


def registry_floor(pool: asyncpg.Pool, route: str) -> web.Application:
    """A /v2/device handler: json.loads, the MAC without colons, the registry's batch upsert,
    and an envelope like syncd's."""
    statement = sql("app_devices_upsert_batch")

    async def write(items: list[tuple[dict[str, str], str]]) -> list[tuple[int, bool]]:
        rows = await pool.fetch(statement, *([doc[f] for doc, _ in items] for f in FIELDS),
                                [ip for _, ip in items], 3600.0)
        found = {r["mac_address"]: (r["status"], r["banned"]) for r in rows}
        return [found[doc["mac_address"]] for doc, _ in items]

    batches = _Batches(write)

    async def device(request: web.Request) -> web.Response:
        started = time.perf_counter()
        doc = json.loads(await request.read())
        doc["mac_address"] = doc["mac_address"].replace(":", "").upper()
        ip = request.remote or ""
        status, banned = await batches.submit((doc, ip))
        return web.json_response({
            "status": 200, "timestamp": int(time.time()),
            "time": round(time.perf_counter() - started, 3), "ip": ip, "message": "Success",
            "data": {"mac_address": doc["mac_address"], "status": status,
                     "ban_status": int(banned)}})

    app = web.Application()
    app.router.add_post(route, device)
    return app

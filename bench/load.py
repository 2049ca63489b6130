"""Load generator: `python -m bench.load URL TOTAL CONCURRENCY` POSTs push bodies, prints JSON results.

Runs in its own process so that it does not share an event loop (or a core) with the server it
measures. Every body has the NeoLock simulator's default push shape with a fresh `id`, so nothing
is deduplicated. Bodies are built before the clock starts.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
import uuid
from typing import Any

import aiohttp

from syncd.devtools.simulators.kg_core import Fleet, StateChange
from syncd.devtools.simulators.neolock_push import PushEvent, default_event_body

TRANSITIONS = (("Locking", "Locked"), ("Unlocking", "Enrolled"), ("Enrolled", "Blinked"),
               ("Accepted", "Enrolled"))


def push_bodies(count: int, seed: int = 11) -> list[bytes]:
    """`count` distinct push bodies shaped like the simulator's default, each with its own id."""
    devices = list(Fleet(seed=seed, devices=64, transition_delay=0).devices.values())
    now_ms = int(time.time() * 1000)
    bodies: list[bytes] = []
    for i in range(count):
        previous, status = TRANSITIONS[i % len(TRANSITIONS)]
        change = StateChange(devices[i % len(devices)], previous, status, now_ms + i)
        event = PushEvent(str(uuid.uuid4()), "KG_DEVICE_" + status.upper(), change)
        doc = default_event_body(event)
        bodies.append(json.dumps(doc, separators=(",", ":")).encode())
    return bodies


async def generate(url: str, total: int, concurrency: int) -> dict[str, Any]:
    """POST `total` bodies to `url` over `concurrency` keep-alive connections; time each one."""
    bodies = push_bodies(total)
    latencies: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    stored = 0
    pending = iter(bodies)
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal stored
            for body in pending:
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        answer = await resp.read()
                        status = str(resp.status)
                except (aiohttp.ClientError, TimeoutError) as err:
                    status = type(err).__name__
                    answer = b""
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1
                if status == "200" and b'"stored"' in answer:
                    stored += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {"requests": total, "seconds": elapsed, "cpu_seconds": cpu, "statuses": dict(statuses),
            "stored": stored, "latencies_ms": [round(x * 1000, 3) for x in latencies]}


def main(argv: list[str]) -> int:
    """Parse URL TOTAL CONCURRENCY, run the load, print one JSON line."""
    if len(argv) != 3:
        print("usage: python -m bench.load URL TOTAL CONCURRENCY", file=sys.stderr)
        return 2
    url, total, concurrency = argv[0], int(argv[1]), int(argv[2])
    print(json.dumps(asyncio.run(generate(url, total, concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

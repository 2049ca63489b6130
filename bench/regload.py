"""Load generator: `python -m bench.regload URL TOTAL CONCURRENCY [OFFSET]` POSTs app registrations.

Like `bench.load` (own process, keep-alive connections, bodies built before the clock starts), but
the bodies are `POST /v2/device` registrations shaped like the doc's example, for device
`OFFSET + i` (request i), a tenth with a newer app_version (which tenth shifts per run). Runs
whose offsets are half a run apart re-post half of the previous run's devices (updates, upgrades,
unchanged re-posts) and register half new ones. Prints one JSON line; "stored" counts 200 "Success" answers.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from typing import Any

import aiohttp

OS = (("iOS", "17.4"), ("Android", "14"), ("iOS", "16.7"), ("Android", "13"))


def registration(device: int, upgrade: bool = False) -> bytes:
    """The registration body of device number `device`."""
    os_name, version = OS[device % len(OS)]
    mac = f"{0xA1B2C3000000 + device:012X}"
    return json.dumps({"mac_address": ":".join(mac[i:i + 2] for i in range(0, 12, 2)),
                       "device_os": os_name, "device_version": version, "device_type": "Mobile",
                       "app_version": "2.1" if upgrade else "2.0", "app_name": "MyApp"}).encode()


async def generate(url: str, total: int, concurrency: int, offset: int) -> dict[str, Any]:
    """POST `total` registrations to `url` over `concurrency` keep-alive connections."""
    run = offset // max(1, total // 2)  # consecutive runs: a device upgrades in some, not others
    bodies = [registration(offset + i, upgrade=(offset + i + run) % 10 == 0) for i in range(total)]
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
                    status, answer = type(err).__name__, b""
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1
                stored += status == "200" and b'"Success"' in answer

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {"requests": total, "seconds": elapsed, "cpu_seconds": cpu, "statuses": dict(statuses),
            "stored": stored, "latencies_ms": [round(x * 1000, 3) for x in latencies]}


def main(argv: list[str]) -> int:
    """Parse URL TOTAL CONCURRENCY [OFFSET], run the load, print one JSON line."""
    if len(argv) not in (3, 4):
        print("usage: python -m bench.regload URL TOTAL CONCURRENCY [OFFSET]", file=sys.stderr)
        return 2
    offset = int(argv[3]) if len(argv) == 4 else 0
    print(json.dumps(asyncio.run(generate(argv[0], int(argv[1]), int(argv[2]), offset))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

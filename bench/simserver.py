"""`python -m bench.simserver N PORT [RATE_LIMIT [UIDS_FILE]]`: a NeoLock simulator in its own process.

The simulator holds a seeded fleet of N devices. With UIDS_FILE, their deviceUids are written there,
one a line, so the benchmark can make them known to syncd. Prints one JSON line
`{"url": …, "devices": N}` once it listens (PORT 0 picks a free port), then serves until its stdin
closes (the benchmark that started it ends) or it receives SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from bench.memsync import SIM_LOGIN, SIM_PASSWORD
from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.neolock import BASE_PATH, NeoLockSim, create_app


async def main(devices: int, port: int, rate_limit: int, uids_file: Path | None) -> None:
    """Serve the simulator until stdin closes or SIGTERM arrives."""
    sim = NeoLockSim(seed=5, devices=devices, rate_limit=rate_limit, login=SIM_LOGIN,
                     password=SIM_PASSWORD)
    if uids_file is not None:
        text = "".join(f"{uid}\n" for uid in sim.devices)
        await asyncio.to_thread(uids_file.write_text, text, encoding="utf-8")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(create_app(sim), port=port, prefix=BASE_PATH) as running:
        print(json.dumps({"url": running.url, "devices": len(sim.devices)}), flush=True)
        eof = asyncio.ensure_future(asyncio.to_thread(sys.stdin.buffer.read))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()


if __name__ == "__main__":
    if not 3 <= len(sys.argv) <= 5:
        print("usage: python -m bench.simserver DEVICES PORT [RATE_LIMIT [UIDS_FILE]]",
              file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]),
                     int(sys.argv[3]) if len(sys.argv) >= 4 else 100,
                     Path(sys.argv[4]) if len(sys.argv) == 5 else None))

"""The embedded PostgreSQL is stopped by a clean stop even after an earlier syncd was SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from syncd.db.embedded import _alive, embedded_postgres

HOLD = """
import asyncio, sys
from pathlib import Path
from syncd.db.embedded import embedded_postgres

async def main():
    async with embedded_postgres(Path(sys.argv[1])):
        print("up", flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


def postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's pid, from postmaster.pid, or None."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    return pid if _alive(pid) else None


async def join_and_stop(data_dir: Path) -> None:
    """Use the embedded server under `data_dir`, then stop cleanly as syncd does."""
    async with embedded_postgres(data_dir):
        pass


def test_a_clean_stop_after_a_kill_9_stops_the_embedded_postgres(short_dir: Path) -> None:
    """A syncd process using the embedded server is SIGKILLed (its postgres lives on, its pid
    stays in pgserver's list); the next syncd joins the server and, on a clean stop, stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(short_dir)],
                              stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout is not None
        for line in holder.stdout:  # log lines, then "up"
            if line == b"up\n":
                break
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    pgdata = short_dir / "postgres"
    first = postmaster_pid(pgdata)
    assert first is not None  # orphaned, still running
    asyncio.run(join_and_stop(short_dir))
    for _ in range(100):
        if postmaster_pid(pgdata) is None:
            break
        time.sleep(0.1)
    assert postmaster_pid(pgdata) is None

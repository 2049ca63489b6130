"""`ready`: time from starting `syncd run` to its sd_notify READY=1, embedded PostgreSQL cold and warm.

Cold: a new data_dir, so initdb runs first. Warm: the same data_dir again (the cluster exists).
Each run is a real `syncd run` subprocess reporting on a NOTIFY_SOCKET we bind, then stopped with
SIGTERM. Targets on the reference 2-core machine: cold ≤ 10 s, warm ≤ 3 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Postgres, Report

WARM_RUNS = 3


def _time_to_ready(data_dir: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="nfy") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(60)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env.update(NOTIFY_SOCKET=path, SYNCD_DATA_DIR=str(data_dir), SYNCD_SERVER__PORT="0",
                   SYNCD_LOGGING__LEVEL="warning")
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "syncd", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            return time.monotonic() - began
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            sock.close()


async def run(pg: Postgres) -> Report:
    """Measure cold and warm start-up to READY."""
    with tempfile.TemporaryDirectory(prefix="sd-") as tmp:  # short: the socket path is limited
        data_dir = Path(tmp)
        cold = await asyncio.to_thread(_time_to_ready, data_dir)
        warm = [await asyncio.to_thread(_time_to_ready, data_dir) for _ in range(WARM_RUNS)]
    median = statistics.median(warm)
    return Report("ready_cold_warm", f"{cold:.2f} s / {median:.2f} s", "cold ≤ 10 s, warm ≤ 3 s",
                  cold <= 10 and median <= 3,
                  [f"cold (initdb + start): {cold:.2f} s; warm runs: "
                   + ", ".join(f"{w:.2f} s" for w in warm)])

"""SIGTERM ends `syncd run` within one deadline, however many request bodies are stalled."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.test_intake_durability import Daemons, daemons, request_head

__all__ = ["daemons"]


def test_sigterm_with_stalled_request_bodies_exits_within_one_shutdown_deadline(
        daemons: Daemons, db_dsn: str, short_dir: Path) -> None:
    """Five pushes whose bodies stop arriving: SIGTERM drains for server.shutdown_timeout (3 s)
    and then exits 0, without a second wait of its own (the old sum was 3 + 3 s): well inside
    systemd's TimeoutStopSec."""
    daemon = daemons.start(db_dsn, shutdown_timeout=3)
    stalled = []
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        sock.sendall(request_head(daemon.port, 1000) + b'{"id": "stalled", "pad": "')
        stalled.append(sock)
    try:
        daemon.round_trip()  # the handlers are now waiting for the rest of their bodies
        began = time.monotonic()
        daemon.proc.terminate()
        assert daemon.proc.wait(timeout=30) == 0, daemon.output()
        took = time.monotonic() - began
    finally:
        for sock in stalled:
            sock.close()
    drained = [json.loads(line) for line in daemon.output().splitlines()
               if '"event": "syncd.drain_timeout"' in line]
    assert [line["requests"] for line in drained] == [5]  # all five were being handled
    assert took < 3 + 2.0, f"stop took {took:.1f}s for a 3 s deadline"

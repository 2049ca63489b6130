"""The systemd watchdog pings only while the event loop runs and the database answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.daemon import watchdog
from syncd.db.pool import Database
from syncd.sdnotify import Notifier


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[Notifier, socket.socket]]:
    """A Notifier aimed at a datagram socket the test reads."""
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    notifier = Notifier(path)
    yield notifier, sock
    notifier.close()
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    """Every message received so far."""
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(sock.recv(4096).decode())
    return messages


async def test_pings_while_healthy_and_withholds_while_the_database_probe_hangs(
        db_dsn: str, notify: tuple[Notifier, socket.socket]) -> None:
    """With the only pooled connection held (a probe that would hang), no WATCHDOG=1 is sent."""
    notifier, sock = notify
    db = await Database.connect(db_dsn, min_size=1, max_size=1)
    task = asyncio.create_task(watchdog(notifier, db, interval=0.1))
    try:
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" in drain(sock)
        async with db.connection():  # the pool is exhausted: the probe times out
            await asyncio.sleep(0.3)  # let an in-flight ping finish
            drain(sock)
            await asyncio.sleep(0.6)
            assert drain(sock) == []
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" in drain(sock)  # pings resume once the database answers
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.close()


async def test_withholds_a_ping_after_the_event_loop_stalled(
        db: Database, notify: tuple[Notifier, socket.socket]) -> None:
    """A loop blocked for longer than the interval does not ping for that round."""
    notifier, sock = notify
    task = asyncio.create_task(watchdog(notifier, db, interval=0.2))
    try:
        await asyncio.sleep(0.5)
        drain(sock)
        time.sleep(0.6)  # noqa: ASYNC251  (on purpose: a wedged event loop, nothing else runs)
        await asyncio.sleep(0.05)  # the watchdog wakes, sees the stall, and skips this ping
        assert drain(sock) == []
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" in drain(sock)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

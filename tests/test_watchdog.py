"""The systemd watchdog pings only while the event loop runs and the database answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.daemon import watchdog
from syncd.db.pool import Database
from syncd.sdnotify import Notifier
from tests.waiting import wait_for


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


def pinged(sock: socket.socket) -> Callable[[], bool]:
    """A condition: a WATCHDOG=1 has arrived since the condition was made (earlier ones drained)."""
    drain(sock)
    return lambda: "WATCHDOG=1" in drain(sock)


def withheld(logs: list[MutableMapping[str, Any]], reason: str) -> Callable[[], bool]:
    """A condition: the watchdog has logged that it withheld a ping for `reason`."""
    return lambda: any(e["event"] == "watchdog.withheld" and e["reason"].startswith(reason)
                       for e in logs)


async def test_pings_while_healthy_and_withholds_while_the_database_probe_hangs(
        db_dsn: str, notify: tuple[Notifier, socket.socket]) -> None:
    """With the only pooled connection held (a probe that would hang), no WATCHDOG=1 is sent."""
    notifier, sock = notify
    db = await Database.connect(db_dsn, min_size=1, max_size=1)
    task = asyncio.create_task(watchdog(notifier, db, interval=0.1))
    try:
        with capture_logs() as logs:
            await wait_for(pinged(sock), what="a WATCHDOG=1 while healthy")
            async with db.connection():  # the pool is exhausted: the probe times out
                await wait_for(withheld(logs, "database probe timed out"),
                               what="the watchdog to withhold a ping")
                drain(sock)  # pings sent before the probe hung
                # The absence of pings is what is shown here, and only time can show it: three
                # rounds (a 0.1 s sleep and a 0.1 s probe timeout each) with the probe hanging.
                await asyncio.sleep(0.6)
                assert drain(sock) == []
            await wait_for(pinged(sock), what="pings to resume once the database answers")
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
        with capture_logs() as logs:
            await wait_for(pinged(sock), what="a WATCHDOG=1 before the stall")
            # It has just pinged, so it is asleep until its next round: the stall falls in it.
            time.sleep(0.6)  # noqa: ASYNC251  (on purpose: a wedged event loop, nothing else runs)
            await wait_for(withheld(logs, "event loop stalled"),
                           what="the watchdog to see the stall")
            assert drain(sock) == []  # that round sent nothing
            await wait_for(pinged(sock), what="pings to resume after the stall")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

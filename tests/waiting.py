"""Waiting for a condition instead of sleeping a fixed time: poll it, fail clearly at a deadline.

A fixed sleep is either too short on a loaded machine (a flaky test) or longer than needed
everywhere else; polling the condition the test needs is neither. A sleep may stay only where
the passing of time is itself what a test shows ("nothing happens within X"), with a comment.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

TIMEOUT = 10.0  # far above what any condition here needs, so only a real failure reaches it


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], *, what: str,
                   timeout: float = TIMEOUT, interval: float = 0.02) -> None:
    """Poll `predicate` (sync or async) until it is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for_blocking(predicate: Callable[[], bool], *, what: str, timeout: float = TIMEOUT,
                      interval: float = 0.05) -> None:
    """`wait_for` for a test without an event loop (one driving a subprocess)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)

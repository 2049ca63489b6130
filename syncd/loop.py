"""The event loop syncd runs on: uvloop when it is installed, else asyncio's own.

uvloop (libuv, the loop under Node.js) does socket I/O, timers and callbacks in C, so aiohttp's
server and asyncpg's protocol spend less time in the loop (see `python -m bench ingest`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def event_loop_factory(*, uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when wanted and installed; None for asyncio's default loop."""
    if not uvloop:
        return None
    try:
        import uvloop as _uvloop
    except ImportError:
        return None
    return _uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop (uvloop if installed)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)

"""The deliverer's lifetime inside `syncd run`: an aiohttp cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from syncd.alerts.deliverer import Deliverer
from syncd.web import keys

DELIVERER = web.AppKey("alert_deliverer", Deliverer)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the alert deliverer as a background task; cancel and await it at cleanup."""
    deliverer = app[DELIVERER] = Deliverer(app[keys.DB], app[keys.HTTP],
                                           app[keys.SETTINGS].alerts, metrics=app[keys.METRICS])
    task = asyncio.create_task(deliverer.run(), name="alert-deliverer")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

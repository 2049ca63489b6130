"""The deliverer's lifetime inside `syncd run`: an aiohttp cleanup context."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from syncd.alerts.deliverer import Deliverer
from syncd.web import keys

DELIVERER = web.AppKey("alert_deliverer", Deliverer)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the alert deliverer as a supervised background task; stop it at cleanup."""
    deliverer = app[DELIVERER] = Deliverer(app[keys.DB], app[keys.HTTP],
                                           app[keys.SETTINGS].alerts, metrics=app[keys.METRICS])
    task = app[keys.SUPERVISOR].start("alert-deliverer", deliverer.run)
    yield
    await task.stop()

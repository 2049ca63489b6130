"""The read-only operator console at `/ui/`: overview, drift, alerts, Codelocks quota, fleet.

Server-rendered HTML with server-side SVG charts; no script, every asset served by syncd, a
strict Content-Security-Policy. It answers on the admin listener (`syncd.web.listeners`).
"""

from __future__ import annotations

from aiohttp import web

from syncd.logs import Redactor
from syncd.web.console import cases, render, static, views

routes = [route for table in (views.routes, cases.routes, static.routes) for route in table
          if isinstance(route, web.RouteDef)]


def setup(app: web.Application, redactor: Redactor) -> None:
    """Give `app` the console's template environment (create_app adds `routes`, as every
    table, through the request bookkeeping)."""
    render.setup(app, redactor)

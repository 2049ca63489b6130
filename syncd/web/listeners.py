"""Which listener answers which route, so nothing of the admin side is public by accident.

- Admin-only routes (the console `/ui/…`, `/api/v1/status`, and `/metrics` when
  `admin.metrics = "admin"`) answer on the admin listener; on the public one only to a request
  carrying `Authorization: Bearer <admin.token>` (compared in constant time), else 404.
- Public-only routes (NeoLock pushes, the app device registry) answer 404 on the admin listener.
- Everything else (health, readiness, the OpenAPI document) answers on both.

A 404 from the gate is the same JSON 404 as a path that does not exist, and `/openapi.json`
documents only the routes the asking listener (and token) serves: nothing tells a prober on the
public listener that the console is there.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from aiohttp import web

from syncd.web.server import ADMIN, listener_of


class Gate:
    """The routes each listener may serve, and the admin bearer token (if one is configured)."""

    def __init__(self, *, admin_only: Iterable[object], public_only: Iterable[object],
                 token: str | None) -> None:
        self.admin_only = frozenset(admin_only)
        self.public_only = frozenset(public_only)
        self._token = token.encode() if token else None

    def check(self, handler: object) -> Callable[[web.Request], bool] | None:
        """The per-request check of `handler`'s route (bound when the route is added): None
        for a route both listeners serve."""
        if handler in self.public_only:
            return lambda request: listener_of(request) != ADMIN
        if handler in self.admin_only:
            return lambda request: listener_of(request) == ADMIN or self.bearer_ok(request)
        return None

    def serves(self, request: web.Request, handler: object) -> bool:
        """Whether `handler`'s route (wrapped or not) answers this request's listener (and
        token)."""
        handler = getattr(handler, "__wrapped__", handler)
        if listener_of(request) == ADMIN:
            return handler not in self.public_only
        return handler not in self.admin_only or self.bearer_ok(request)

    def bearer_ok(self, request: web.Request) -> bool:
        """True when a token is configured and the request's bearer token is it."""
        if self._token is None:
            return False
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), self._token)


GATE = web.AppKey("listener_gate", Gate)


def handlers(table: Iterable[web.AbstractRouteDef]) -> list[object]:
    """The handlers of a route table's routes."""
    return [route.handler for route in table if isinstance(route, web.RouteDef)]

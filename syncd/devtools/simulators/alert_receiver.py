"""A local alert receiver: accepts Standard Webhooks and Alertmanager posts and checks signatures.

It verifies signatures on its own, from the Standard Webhooks spec (it imports nothing of
syncd's), so a signing mistake in syncd cannot hide in a shared helper. Tests and the demo
script its answers: a list of statuses to give first (e.g. 503, 410), then 200.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web


def signature_ok(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """True when one `v1,` entry of `header` is the HMAC-SHA256 of id.timestamp.body."""
    key = base64.b64decode(secret.split("_", 1)[1])
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    wanted = "v1," + base64.b64encode(digest).decode()
    return any(hmac.compare_digest(wanted, part) for part in header.split())


@dataclasses.dataclass
class Received:
    """One accepted post."""

    path: str
    webhook_id: str | None
    verified: bool
    body: Any
    at: float = dataclasses.field(default_factory=time.time)  # wall clock of arrival


@dataclasses.dataclass
class AlertReceiver:
    """State of the receiver: its secret, scripted answers and what it accepted."""

    secret: str
    answers: list[int] = dataclasses.field(default_factory=list)  # given first, then 200
    retry_after: str | None = None
    reply: str = ""  # the body of a scripted refusal (what a receiver says about its trouble)
    received: list[Received] = dataclasses.field(default_factory=list)
    refused: int = 0

    def ids(self) -> list[str | None]:
        """Webhook ids of the accepted posts, in arrival order."""
        return [r.webhook_id for r in self.received]


RECEIVER = web.AppKey("receiver", AlertReceiver)


async def _accept(request: web.Request) -> web.Response:
    state = request.app[RECEIVER]
    body = await request.read()
    if state.answers:
        status = state.answers.pop(0)
        if status >= 300:
            state.refused += 1
            extra = {"Retry-After": state.retry_after} if state.retry_after else {}
            return web.Response(status=status, headers=extra, text=state.reply or None)
    headers = request.headers
    verified = False
    if request.path.endswith("/api/v2/alerts"):
        verified = True  # Alertmanager takes no signature
    elif "webhook-signature" in headers:
        verified = signature_ok(state.secret, headers.get("webhook-id", ""),
                                headers.get("webhook-timestamp", ""), body,
                                headers["webhook-signature"])
    state.received.append(Received(request.path, headers.get("webhook-id"), verified,
                                   json.loads(body)))
    return web.Response(status=204 if verified else 401)


def create_app(state: AlertReceiver) -> web.Application:
    """The receiver app: POST anywhere."""
    app = web.Application()
    app[RECEIVER] = state
    app.router.add_post("/{tail:.*}", _accept)
    return app

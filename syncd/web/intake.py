"""`POST /hooks/neolock/{secret}`: answer 200 only once the pushed event is committed."""

from __future__ import annotations

import asyncio
import decimal
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import HttpVersion11, web

from syncd.db import ops
from syncd.db.pool import Database
from syncd.errors import DataRejected, SyncdError
from syncd.inbox.parse import dedupe_key, unstorable
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.settings.service import ServerSettings
from syncd.vendors.neolock.events import parse_event
from syncd.web import openapi
from syncd.web.bookkeeping import EVENT_ID
from syncd.web.server import read_body

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
SOURCE = "neolock"
_ANSWER = {True: b'{"status":"stored"}', False: b'{"status":"duplicate"}'}  # encoded once
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_NEGATIVE_ZERO = re.compile(r"-0(?![0-9])")


class HookSecrets:
    """Checks the secret in a hook URL in constant time.

    A configured secret is compared directly (no database needed: intake stays stateless). A
    generated one is known only by its SHA-256 in ops.subscriptions, re-read at most every
    `ttl` seconds so a secret rotated by another replica is picked up.
    """

    def __init__(self, db: Database, configured: str | None, ttl: float = 10.0) -> None:
        self.db = db
        self.configured = configured.encode() if configured else None
        self.ttl = ttl
        self._digest: str | None = None
        self._read_at = float("-inf")

    def known(self, given: str) -> bool | None:
        """True when `given` is the current hook secret, False when not; None when a generated
        secret is due to be read again (then `read`). No coroutine for the common case."""
        if self.configured is not None:
            return hmac.compare_digest(given.encode(), self.configured)
        if time.monotonic() - self._read_at > self.ttl:
            return None
        return self._is_digest_of(given)

    async def matches(self, given: str) -> bool:
        """True when `given` is the current hook secret (reading a generated one if due)."""
        known = self.known(given)
        return known if known is not None else await self.read(given)

    async def read(self, given: str) -> bool:
        """Read the generated secret's digest now; True when `given` is that secret."""
        now = time.monotonic()
        sub = await ops.get_subscription(self.db, SOURCE)
        self._digest = sub.secret_sha256 if sub and sub.status != "deleted" else None
        self._read_at = now
        return self._is_digest_of(given)

    def _is_digest_of(self, given: str) -> bool:
        if not self._digest:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode()).hexdigest(), self._digest)


class Intake:
    """What the hook route needs, bound once when the app starts: a push then costs one app
    lookup (the route runs for every push)."""

    def __init__(self, db: Database, secrets: HookSecrets, committer: GroupCommitter,
                 wakeup: asyncio.Event, server: ServerSettings,
                 count: Callable[[str, str], None]) -> None:
        self.db = db
        self.secrets = secrets
        self.committer = committer
        self.wakeup = wakeup  # set when a new event is stored: the inbox worker takes it
        self.max_body_bytes = server.max_body_bytes
        self.body_timeout = server.body_timeout
        self.count = count  # (source, outcome): syncd_events_total


INTAKE = web.AppKey("intake", Intake)


async def _continue_when_acceptable(request: web.Request) -> None:
    """Answer `Expect: 100-continue` only for a known secret and an acceptable announced size.

    Otherwise say nothing: the handler then answers 404 or 413 before any body is sent.
    """
    if request.version != HttpVersion11:
        return
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="unknown Expect header")
    too_big = (request.content_length or 0) > request.app[INTAKE].max_body_bytes
    try:
        known = await request.app[INTAKE].secrets.matches(request.match_info["secret"])
    except SyncdError:  # the handler will meet the same error and answer it properly
        return
    if known and not too_big:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own handler: the response has not begun


@routes.post("/hooks/neolock/{secret}", expect_handler=_continue_when_acceptable)
@openapi.documented(
    "NeoLock pushes an event; 200 only after it is durable",
    {200: "stored (or a duplicate of a stored event)", 400: "not JSON: kept in quarantine",
     404: "unknown hook secret: nothing stored", 408: "body did not arrive in time",
     413: "body too large",
     503: "database unavailable: retry (Retry-After)"},
    tags=["intake"], schemas={200: "Stored"},
    parameters=[{"name": "secret", "in": "path", "required": True, "schema": {"type": "string"}}],
    request_body={"required": True, "content": {"application/json": {"schema": {}}}})
async def neolock_hook(request: web.Request) -> web.Response:
    """Persist a NeoLock push, then acknowledge it."""
    intake = request.app[INTAKE]
    secret = request.match_info["secret"]
    known = intake.secrets.known(secret)
    if known is None:  # a generated secret is due to be read again
        known = await intake.secrets.read(secret)
    if not known:
        intake.count(SOURCE, "bad_secret")
        raise web.HTTPNotFound()
    if (request.content_length or 0) > intake.max_body_bytes:  # refused before a byte is read
        raise web.HTTPRequestEntityTooLarge(intake.max_body_bytes, request.content_length or 0)
    # over server.max_body_bytes: aiohttp answers 413; slower than server.body_timeout: 408
    body = await read_body(request, intake.body_timeout)
    text, doc, problem = _decode(body)
    if problem is None:
        event = parse_event(doc)
        if event.event_id:  # for the access line: the id's text, bounded (the vendor's, any length)
            request[EVENT_ID] = event.event_id[2][:128]
        item = InboxItem(SOURCE, dedupe_key(event.event_id, body), event.event_type, event.subject,
                         text)
        try:
            new = await intake.committer.submit(item)
        except DataRejected as err:  # PostgreSQL refused what Python accepted
            problem = f"the database cannot store this JSON: {err}"
    if problem is not None:
        await ops.quarantine(intake.db, SOURCE, reason=problem[:500],
                             content_type=request.content_type, body=body)
        intake.count(SOURCE, "quarantined")
        log.info("intake.quarantined", reason=problem[:200], bytes=len(body))
        raise web.HTTPBadRequest(text=f"{problem[:200]}; the body was kept for inspection")
    if new:
        intake.count(SOURCE, "stored")
        intake.wakeup.set()
    else:
        intake.count(SOURCE, "duplicate")
    return web.Response(body=_ANSWER[new], content_type="application/json")


def _decode(body: bytes) -> tuple[str, Any, str | None]:
    """The body as text and as JSON, or why PostgreSQL's jsonb would not take it."""
    try:
        text = body.decode("utf-8")  # strict: UTF-16 and broken UTF-8 are refused here
        if text.startswith("\ufeff"):
            return text, None, "invalid JSON: starts with a byte order mark"
        doc = _loads(text)
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        return "", None, f"invalid JSON: {err}"
    except RecursionError:
        return "", None, "invalid JSON: nested too deeply"
    # Only an escape can put a NUL or a lone surrogate in strictly decoded JSON text, so the walk
    # over every value (a fifth of a push's handling) runs only when such an escape is present.
    return text, doc, unstorable(doc) if "\\u" in text and _RISKY_ESCAPE.search(text) else None


def _loads(text: str) -> Any:
    """JSON with every float an exact Decimal checked against jsonb's range. Integers are read
    as Python ints (exact, and four times faster than a Decimal each) unless one is too long for
    int() or the text holds a `-0`, which an int would print as `0`."""
    if "-0" not in text or not _NEGATIVE_ZERO.search(text):  # `in` first: a scan in C, no regex
        try:
            return _INT_DECODER.decode(text)
        except ValueError:
            pass  # perhaps an integer past int()'s digit limit: read again, every number exactly
    return _EXACT_DECODER.decode(text)


def _jsonb_number(token: str) -> decimal.Decimal:
    # jsonb numbers are PostgreSQL numerics: at most 131072 digits before the point and 16383
    # after. Python would accept 1e1000000; PostgreSQL would then refuse the whole insert.
    number = decimal.Decimal(token)
    if number.is_finite() and number != 0 and not -16383 <= number.adjusted() < 131072:
        raise ValueError(f"number {token[:40]} is out of PostgreSQL's range")
    return number


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads() with options builds a decoder per call.
_INT_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_jsonb_number)
_EXACT_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_jsonb_number,
                                  parse_int=_jsonb_number)

"""Intake deduplicates resent events, and only those: distinct ids are never dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from syncd.app import create_app
from syncd.db import ops
from syncd.settings.core import Settings
from syncd.web import keys

AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]
SECRET = "dedupe-test-hook-secret-0123456789"


async def test_events_with_ids_that_differ_in_type_text_field_or_past_256_chars_are_all_stored(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """`1`, `"1"`, `1.0`, `" 1 "`, `{"eventId":"1"}` and two 300-character ids differing at the
    end are seven events: each is answered "stored", and a resend of each is a "duplicate"."""
    settings = make_settings(
        neolock={"base_url": "http://127.0.0.1:9/api", "login": "shop", "password": "pw-123456",
                 "webhook_secret": SECRET},
        jobs={n: {"enabled": False} for n in ("neolock-subscription", "neolock-uploads",
                                              "neolock-devices")})
    client = await aiohttp_client(create_app(settings))
    long_a, long_b = "x" * 299 + "a", "x" * 299 + "b"
    bodies = [b'{"id": 1}', b'{"id": "1"}', b'{"id": 1.0}', b'{"id": " 1 "}',
              b'{"eventId": "1"}', b'{"id": "%s"}' % long_a.encode(),
              b'{"id": "%s"}' % long_b.encode()]
    answers = []
    for round_ in range(2):
        for body in bodies:
            resp = await client.post(f"/hooks/neolock/{SECRET}", data=body,
                                     headers={"Content-Type": "application/json"})
            assert resp.status == 200, (round_, body)
            answers.append((await resp.json())["status"])
    assert answers == ["stored"] * 7 + ["duplicate"] * 7
    counts = await ops.inbox_counts(client.app[keys.DB])
    assert sum(counts.values()) == 7

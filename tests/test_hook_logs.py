"""What syncd logs and answers when hook requests go wrong: no secret, no path, no body, no 500.

An in-process server on a real socket, with syncd's JSON logging captured, so raw and broken
requests (a disconnect mid-body) reach aiohttp exactly as a network would deliver them.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from syncd import logs
from tests.served import ServeSyncd, head, raw
from tests.waiting import wait_for

SECRETS = {22: "k" * 10 + "Q7x_Zp2-Lm9w"[:12], 64: ("S3cr3t-" * 10)[:64],
           200: ("long-hook-secret_" * 12)[:200]}
BODY_MARK = "body-marker-that-must-never-be-logged"


@pytest.mark.parametrize("size", sorted(SECRETS))
async def test_no_log_line_carries_a_hook_path_a_secret_or_a_body(
        serve_syncd: ServeSyncd, size: int) -> None:
    """With secrets of 22, 64 and 200 characters, a client disconnecting mid-body, a body that is
    not JSON, and a wrong secret leave no hook path, no part of the secret and no body in the logs."""
    secret = SECRETS[size]
    async with serve_syncd(secret) as served:
        body = json.dumps({"id": "e1", "deviceUid": "u1", "note": BODY_MARK}).encode()
        path = f"/hooks/neolock/{secret}"
        await served.vanish_mid_body(head(path, len(body) + 100) + body)
        await raw(served.port, head(path, 30) + b"{not json " + BODY_MARK.encode()[:20])
        await raw(served.port, head(f"/hooks/neolock/{secret[::-1]}", len(body)) + body)
        await wait_for(lambda: sum(line["event"] == "http.access" for line in served.log_lines())
                       == 3, what="an access line for each of the three requests")
        output = served.output.getvalue()
    assert output  # something was logged
    assert "/hooks/neolock/" not in output.replace("/hooks/neolock/{secret}", "")
    assert BODY_MARK[:12] not in output
    for start in range(0, len(secret) - 8):
        assert secret[start:start + 8] not in output, (start, output)


async def test_a_client_disconnecting_mid_body_is_counted_as_client_closed_not_as_an_error(
        serve_syncd: ServeSyncd) -> None:
    """A push whose client goes away mid-body is counted as status 499 (client closed), never as a
    500, and logged once at info level without a traceback; nothing is stored."""
    secret = SECRETS[22]
    async with serve_syncd(secret) as served:
        for _ in range(3):  # each returns once its handler has counted and logged the request
            await served.vanish_mid_body(head(f"/hooks/neolock/{secret}", 500) + b'{"id": "x"')
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{served.port}/metrics") as resp:
            metrics = await resp.text()
        lines = served.log_lines()
    hook_counts = [m for m in metrics.splitlines()
                   if m.startswith("syncd_http_requests_total") and "hooks" in m]
    assert hook_counts == ['syncd_http_requests_total{method="POST",'
                           'route="/hooks/neolock/{secret}",status="499"} 3.0']
    closed = [line for line in lines if line["event"] == "http.client_closed"]
    assert len(closed) == 3 and all(line["level"] == "info" for line in closed)
    assert not [line for line in lines if line["level"] in ("error", "critical")
                or "exception" in line]


def test_the_redactor_hides_a_hook_path_even_when_it_was_cut_short() -> None:
    """A hook path whose secret was truncated (a repr cut at 80 characters) loses its last segment,
    so no prefix of the secret survives; the route template stays readable."""
    secret = SECRETS[64]
    redactor = logs.Redactor([secret])
    cut = f"<Request POST /hooks/neolock/{secret}>"[:80]
    assert redactor.scrub(cut) == "<Request POST /hooks/neolock/[REDACTED]"
    assert redactor.scrub("route=/hooks/neolock/{secret}") == "route=/hooks/neolock/{secret}"

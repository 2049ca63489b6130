"""The hook route's edges: Expect: 100-continue, malformed requests, a database outage."""

from __future__ import annotations

import asyncio

import aiohttp

from syncd.web import keys
from tests.served import ServeSyncd, head, raw

SECRET = "edges-test-hook-secret-0123456789abc"
HOOK = f"/hooks/neolock/{SECRET}"
CONTINUE = "Expect: 100-continue\r\n"


async def test_expect_100_continue_is_answered_only_after_the_secret_and_size_checks(
        serve_syncd: ServeSyncd) -> None:
    """A client announcing its body with `Expect: 100-continue` gets 404 for a wrong secret and
    413 for an announced size over server.max_body_bytes, never `100 Continue`; with the right
    secret and size it gets `100 Continue`, sends the body, and the push is stored."""
    body = b'{"id": "expect-1", "deviceUid": "u1"}'
    async with serve_syncd(SECRET, max_body_bytes=4096) as served:
        wrong = await raw(served.port, head("/hooks/neolock/not-the-secret-000000", len(body),
                                            CONTINUE))
        big = await raw(served.port, head(HOOK, 100_000, CONTINUE))
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(head(HOOK, len(body), CONTINUE))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(body)
        final = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
    assert wrong.startswith(b"HTTP/1.1 404") and b"100 Continue" not in wrong, wrong
    assert big.startswith(b"HTTP/1.1 413") and b"100 Continue" not in big, big
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200") and b'"stored"' in final, final


async def test_malformed_requests_are_answered_400_without_echoing_the_request_line(
        serve_syncd: ServeSyncd) -> None:
    """Requests aiohttp's parser refuses (bad method, bad target, bad header, bad version) get a
    plain 400 that quotes nothing, so a hook secret in the request line is not sent back, and no
    log line carries it either."""
    requests = [b"G\x01T %s HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"POST %s HTTP/9.9\r\nHost: x\r\n\r\n"]
    async with serve_syncd(SECRET) as served:
        answers = []
        for i, request in enumerate(requests):
            target = HOOK if i != 1 else HOOK[:20] + " " + HOOK[20:]  # a space: a bad target
            answers.append(await raw(served.port, request % target.encode()))
        output = served.output.getvalue()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
        assert answer.endswith(b"\r\n\r\n400 Bad Request"), answer
    assert SECRET[:12] not in output and SECRET[-12:] not in output


async def test_pushes_refused_during_a_database_outage_log_one_warning_and_are_counted(
        serve_syncd: ServeSyncd) -> None:
    """With the database gone, twenty pushes get 503 each; the outage is logged once (one
    warning), every refusal is counted in syncd_http_requests_total."""
    async with serve_syncd(SECRET) as served:
        await served.app[keys.DB].pool.close()  # as if the server went away for good
        statuses = []
        async with aiohttp.ClientSession() as session:
            for i in range(20):
                async with session.post(f"http://127.0.0.1:{served.port}{HOOK}",
                                        json={"id": f"down-{i}", "deviceUid": "u"}) as resp:
                    statuses.append(resp.status)
            async with session.get(f"http://127.0.0.1:{served.port}/metrics") as resp:
                metrics = await resp.text()
        lines = served.log_lines()
    assert statuses == [503] * 20
    http_warnings = [line for line in lines
                     if line["level"] == "warning" and line["event"].startswith("http.")]
    assert [line["event"] for line in http_warnings] == ["http.database_unavailable"]
    assert ('syncd_http_requests_total{method="POST",route="/hooks/neolock/{secret}",'
            'status="503"} 20.0') in metrics

"""The hook route's edges: Expect: 100-continue, malformed requests, a database outage."""

from __future__ import annotations

import asyncio

import aiohttp

from syncd.db import ops
from syncd.db.pool import Database
from syncd.sync.subscription import digest
from syncd.web import keys
from syncd.web.intake import HookSecrets
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


async def test_a_generated_secret_is_read_once_per_ttl_and_a_rotation_is_picked_up(
        db: Database) -> None:
    """With no configured secret, the hook secret is the SHA-256 stored in ops.subscriptions:
    `known()` answers from the copy read last (no database call) until `ttl` has passed, then
    says it must be read again (None); `matches()` reads it, so a secret rotated by another
    replica is taken, the old one refused, and a deleted subscription refuses every secret."""
    await ops.save_subscription(db, "neolock", public_url="https://a.example/hooks/neolock/",
                                secret_sha256=digest("first-secret"), secret_source="generated")
    secrets = HookSecrets(db, None, ttl=3600.0)
    assert secrets.known("first-secret") is None  # never read yet
    assert await secrets.matches("first-secret") is True
    assert secrets.known("first-secret") is True and secrets.known("other") is False

    await ops.save_subscription(db, "neolock", public_url="https://a.example/hooks/neolock/",
                                secret_sha256=digest("second-secret"), secret_source="generated")
    assert secrets.known("second-secret") is False  # the copy read an hour's ttl ago still holds
    secrets.ttl = 0.0  # now due: the next check reads the database again
    await asyncio.sleep(0.01)
    assert secrets.known("second-secret") is None
    assert await secrets.matches("second-secret") is True
    await asyncio.sleep(0.01)
    assert await secrets.matches("first-secret") is False

    await ops.subscription_deleted(db, "neolock")
    await asyncio.sleep(0.01)
    assert await secrets.matches("second-secret") is False


async def test_a_configured_secret_never_needs_the_database() -> None:
    """A configured hook secret is compared directly: `known()` always answers."""
    secrets = HookSecrets(None, "configured-secret")  # type: ignore[arg-type]  # no database
    assert secrets.known("configured-secret") is True
    assert secrets.known("configured-secreT") is False
    assert await secrets.matches("configured-secret") is True

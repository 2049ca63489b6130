"""The shared vendor HTTP machinery, against tiny purpose-built aiohttp servers on port 0."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.devtools.simulators.common import serve
from syncd.errors import (
    SyncdError,
    VendorAuthError,
    VendorFault,
    VendorRateLimited,
    VendorTransportError,
)
from syncd.vendors import usage
from syncd.vendors.http import Reply, Token, TokenAuth, TokenKeeper, VendorHttp, jwt_expiry
from syncd.vendors.pacing import Pacer, RetryPolicy, parse_retry_after
from syncd.vendors.usage import Usage
from tests.clocks import FIXED, Clock

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A one-route server that records when each request arrived (server-side clock)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.arrivals: list[float] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        return await self.handler(request)

    def app(self) -> web.Application:
        """The Application answering every path with the handler."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


def statuses(*codes: int, headers: dict[str, str] | None = None) -> Handler:
    """A handler answering the given statuses in turn, then 200 `{"ok": true}`."""
    queue = list(codes)

    async def handler(_request: web.Request) -> web.StreamResponse:
        if queue:
            return web.json_response({"error": "nope"}, status=queue.pop(0), headers=headers)
        return web.json_response({"ok": True})

    return handler


def max_in_window(arrivals: list[float], window: float = 1.0) -> int:
    """The most arrivals inside any half-open window of `window` seconds."""
    ordered = sorted(arrivals)
    return max(sum(1 for t in ordered[i:] if t < start + window)
               for i, start in enumerate(ordered))


async def test_pacer_keeps_every_one_second_window_within_the_rate(
        session: aiohttp.ClientSession) -> None:
    """Concurrent callers, an idle spell, then more: no server-side 1 s window holds > rate."""
    server = Server(statuses())
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", rate=20)
        await asyncio.gather(*(http.request("GET", running.url + "/a") for _ in range(24)))
        await asyncio.sleep(0.3)  # idle: a token bucket would now allow a burst
        await asyncio.gather(*(http.request("GET", running.url + "/b") for _ in range(8)))
    assert len(server.arrivals) == 32
    assert max_in_window(server.arrivals) <= 20


async def test_pacer_serves_waiters_in_arrival_order() -> None:
    """Waiters are released first come, first served."""
    pacer = Pacer(200)
    order: list[int] = []

    async def take(n: int) -> None:
        await pacer.wait()
        order.append(n)

    await asyncio.gather(*(take(n) for n in range(10)))
    assert order == list(range(10))


def test_pacer_rejects_a_nonsense_rate() -> None:
    """A rate that is not a positive finite number is a programming error."""
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate"):
            Pacer(bad)


async def test_429_retry_after_is_honoured_then_succeeds(session: aiohttp.ClientSession) -> None:
    """Two 429s with Retry-After: 1 are waited out (server-side gaps ≥ 1 s), then 200 returns."""
    server = Server(statuses(429, 429, headers={"Retry-After": "1"}))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        reply = await http.request("GET", running.url + "/x")
    assert reply.status == 200
    assert (http.requests, http.retries) == (3, 2)
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps)


async def test_retry_after_beyond_the_cap_is_raised_not_slept(
        session: aiohttp.ClientSession) -> None:
    """A Retry-After longer than max_retry_after raises VendorRateLimited at once, carrying it."""
    server = Server(statuses(429, headers={"Retry-After": "3600"}))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        with pytest.raises(VendorRateLimited) as caught:
            await http.request("GET", running.url + "/x")
    assert caught.value.retry_after == 3600
    assert http.requests == 1


async def test_429_after_retries_is_rate_limited_even_for_post(
        session: aiohttp.ClientSession) -> None:
    """429 is retried even for a POST (nothing was done), and raises once retries run out."""
    server = Server(statuses(*[429] * 10, headers={"Retry-After": "0"}))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        with pytest.raises(VendorRateLimited, match="429"):
            await http.request("POST", running.url + "/x", json={})
    assert http.requests == FAST.max_retries + 1


async def test_5xx_storm_is_retried_then_raised_as_fault(session: aiohttp.ClientSession) -> None:
    """A 502 storm on a GET is retried max_retries times, then raised as VendorFault."""
    server = Server(statuses(*[502] * 10))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        with pytest.raises(VendorFault, match="HTTP 502"):
            await http.request("GET", running.url + "/x")
    assert http.requests == FAST.max_retries + 1


async def test_transient_5xx_on_get_recovers(session: aiohttp.ClientSession) -> None:
    """A GET that meets 500 then 503 succeeds on the third attempt."""
    server = Server(statuses(500, 503))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        reply = await http.request("GET", running.url + "/x")
    assert reply.json() == {"ok": True}
    assert http.requests == 3


async def test_5xx_on_a_post_is_not_retried_unless_marked_idempotent(
        session: aiohttp.ClientSession) -> None:
    """A POST meeting 500 is not repeated; the same POST marked idempotent is."""
    server = Server(statuses(500, 500))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        with pytest.raises(VendorFault):
            await http.request("POST", running.url + "/x", json={})
        assert http.requests == 1
        reply = await http.request("POST", running.url + "/x", json={}, idempotent=True)
    assert reply.status == 200
    assert http.requests == 3


async def test_4xx_other_than_429_is_never_retried(session: aiohttp.ClientSession) -> None:
    """A 400 or 404 is handed back to the vendor client at once."""
    server = Server(statuses(400, 404))
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST)
        assert (await http.request("GET", running.url + "/x")).status == 400
        assert (await http.request("GET", running.url + "/x")).status == 404
    assert http.requests == 2


async def test_refused_connection_is_a_transport_error(session: aiohttp.ClientSession) -> None:
    """Nobody listening: retried (nothing was sent), then VendorTransportError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = VendorHttp(session, "t", retry=FAST)
    with pytest.raises(VendorTransportError, match="ClientConnectorError") as caught:
        await http.request("POST", f"http://127.0.0.1:{port}/x", json={})
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert http.requests == FAST.max_retries + 1


async def test_a_hung_server_is_a_transport_error(session: aiohttp.ClientSession) -> None:
    """A server that never answers times out into VendorTransportError (a GET is retried)."""

    async def hang(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)  # longer than the client's timeout, short for server cleanup
        return web.Response()

    server = Server(hang)
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=RetryPolicy(max_retries=1, base_delay=0.01),
                          timeout=0.2)
        with pytest.raises(VendorTransportError, match="timed out"):
            await http.request("GET", running.url + "/x")
    assert http.requests == 2


async def test_a_body_cut_short_on_the_wire_is_a_fault(session: aiohttp.ClientSession) -> None:
    """A connection closed before Content-Length bytes arrived is VendorFault (truncated)."""

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b'{"result": "SU')
        assert request.transport is not None
        request.transport.close()
        return resp

    async with serve(Server(cut).app()) as running:
        http = VendorHttp(session, "t", retry=RetryPolicy(max_retries=0))
        with pytest.raises(VendorFault, match="truncated") as caught:
            await http.request("GET", running.url + "/x")
    assert isinstance(caught.value.__cause__, aiohttp.ClientPayloadError)


async def test_an_undecodable_body_is_a_fault_chained_to_the_decode_error(
        session: aiohttp.ClientSession) -> None:
    """A 200 whose JSON is cut in half raises VendorFault from the JSON error."""

    async def half(_request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"data": [{"bro', content_type="application/json")

    async with serve(Server(half).app()) as running:
        reply = await VendorHttp(session, "t").request("GET", running.url + "/x")
    with pytest.raises(VendorFault, match="not valid JSON") as caught:
        reply.json()
    assert isinstance(caught.value.__cause__, ValueError)


async def test_redirects_are_not_followed(session: aiohttp.ClientSession) -> None:
    """A 302 elsewhere is VendorFault: following it would hand our token headers to that host."""

    async def redirect(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://elsewhere.invalid/steal")

    async with serve(Server(redirect).app()) as running:
        http = VendorHttp(session, "t")
        with pytest.raises(VendorFault, match="redirect"):
            await http.request("GET", running.url + "/x", headers={"x-token": "secret"})
    assert http.requests == 1


async def test_an_oversized_body_is_a_fault(session: aiohttp.ClientSession) -> None:
    """A body past max_body is refused rather than buffered."""

    async def big(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000)

    async with serve(Server(big).app()) as running:
        with pytest.raises(VendorFault, match="limit"):
            await VendorHttp(session, "t", max_body=1000).request("GET", running.url + "/x")


async def test_concurrency_limit_caps_requests_in_flight(session: aiohttp.ClientSession) -> None:
    """With concurrency=2, the server never sees more than two requests at once."""
    in_flight = peak = 0

    async def slow(_request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return web.json_response({})

    async with serve(Server(slow).app()) as running:
        http = VendorHttp(session, "t", concurrency=2)
        await asyncio.gather(*(http.request("GET", running.url + "/x") for _ in range(8)))
    assert peak == 2


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After is read as delta-seconds or an HTTP-date; junk and negatives are handled."""
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("inf") is None


def test_full_jitter_backoff_stays_within_its_exponential_cap() -> None:
    """Each delay is drawn from [0, min(max_delay, base·2^attempt)]."""
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        cap = min(4.0, 0.5 * 2**attempt)
        draws = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in draws)
        assert max(draws) > cap / 2  # jittered across the range, not fixed


def test_jwt_expiry_is_read_without_verifying() -> None:
    """The exp claim is read from any JWT-shaped token; other tokens have no expiry."""
    token = ("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAzMDB9."
             "c2lnbmF0dXJlLW5vdC1jaGVja2Vk")  # {"exp":1700000300}
    assert jwt_expiry(token) == 1_700_000_300
    assert jwt_expiry("ae600ca0f1d0aeed8af3f93c8530a69c714752b7") is None
    assert jwt_expiry("a.!!!.c") is None


async def test_token_keeper_renews_shortly_before_expiry_and_once_per_refusal() -> None:
    """A token is reused, renewed inside the margin, and dropped only if it is the refused one."""
    clock = Clock(FIXED)
    issued: list[str] = []

    async def fetch() -> Token:
        issued.append(f"t{len(issued)}")
        return Token(issued[-1], clock() + 100)

    keeper = TokenKeeper(fetch, margin=10, clock=clock)
    assert await keeper.get() == "t0"
    clock.advance(seconds=89)
    assert await keeper.get() == "t0"
    clock.advance(seconds=2)  # within 10 s of expiry
    assert await keeper.get() == "t1"
    keeper.invalidate("t0")  # a stale refusal: t1 is kept
    assert await keeper.get() == "t1"
    keeper.invalidate("t1")
    assert await keeper.get() == "t2"
    assert "t2" not in repr(Token("t2"))


async def test_token_keeper_fetches_once_for_concurrent_callers() -> None:
    """Many callers needing a token at once cause one fetch."""
    calls = 0

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return Token("t", None)

    keeper = TokenKeeper(fetch)
    assert set(await asyncio.gather(*(keeper.get() for _ in range(5)))) == {"t"}
    assert calls == 1


def test_reply_recognises_html_pages() -> None:
    """An HTML content type or a body starting with '<' is an HTML page."""
    html = Reply("t", "GET", "/", 200, {"Content-Type": "text/html; charset=utf-8"}, b"x")
    sniffed = Reply("t", "GET", "/", 200, {"Content-Type": "application/json"}, b"  <!DOCTYPE")
    plain = Reply("t", "GET", "/", 200, {"Content-Type": "application/json"}, b"{}")
    assert html.looks_like_html() and sniffed.looks_like_html()
    assert not plain.looks_like_html()


class QuotaSpent(SyncdError):
    """What a quota ledger raises to refuse a call."""


async def test_before_send_sees_every_attempt_and_can_refuse_one(
        session: aiohttp.ClientSession) -> None:
    """`before_send(method, path)` is awaited before each attempt (retries included); raising a
    SyncdError refuses the attempt: it is not sent, not counted, and reaches the caller."""
    server = Server(statuses(503))
    seen: list[tuple[str, str]] = []

    async def before_send(method: str, route: str) -> None:
        seen.append((method, route))
        if len(seen) > 2:
            raise QuotaSpent("monthly quota spent")

    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", retry=FAST, before_send=before_send)
        with usage.counting(Usage()) as counted:
            reply = await http.request("GET", running.url + "/locks/K3-000123/audit")
            with pytest.raises(QuotaSpent):
                await http.request("GET", running.url + "/locks")
    assert reply.status == 200
    assert seen == [("GET", "/locks/K3-000123/audit")] * 2 + [("GET", "/locks")]
    assert len(server.arrivals) == http.requests == counted.requests == 2


async def test_token_auth_renews_once_for_refusals_arriving_before_and_after_the_renewal(
        session: aiohttp.ClientSession) -> None:
    """Ten calls sent 30 ms apart with a token the server has just revoked, each answered after
    200 ms: refusals keep arriving after the first one renewed the token, yet there is exactly one
    renewal, every call is repeated at most once, and every call succeeds."""
    valid = {"t1"}
    issued: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        token = request.headers.get("X-Token", "")
        await asyncio.sleep(0.2)
        if token not in valid:
            return web.json_response({"error": "expired"}, status=401)
        return web.json_response({"ok": True})

    server = Server(handler)

    async def fetch() -> Token:
        issued.append(f"t{len(issued) + 1}")
        valid.clear()
        valid.add(issued[-1])
        return Token(issued[-1])

    def accept(reply: Reply) -> Any:
        if reply.status == 401:
            raise VendorAuthError("t", "refused")
        return reply.json()

    keeper = TokenKeeper(fetch)
    auth = TokenAuth(keeper, lambda token: {"X-Token": token})
    async with serve(server.app()) as running:
        http = VendorHttp(session, "t", rate=1 / 0.03)
        await auth.call(lambda a: http.request("GET", running.url + "/x", auth=a), accept)
        valid.clear()  # the vendor revokes t1
        answers = await asyncio.gather(*(
            auth.call(lambda a: http.request("GET", running.url + "/x", auth=a), accept)
            for _ in range(10)))
    assert answers == [{"ok": True}] * 10
    assert issued == ["t1", "t2"]
    assert 1 + 10 < len(server.arrivals) <= 1 + 2 * 10

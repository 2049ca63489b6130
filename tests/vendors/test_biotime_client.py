"""BioTimeClient against the BioTime simulator (and tiny servers for hostile answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.devtools.simulators.biotime import BASE_PATH, BioTimeSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorFault,
    VendorLicenceError,
    VendorNotFound,
)
from syncd.vendors.biotime import BioTimeClient
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)
LOGIN_ROUTE = "/jwt-api-token-auth/"
TERMINALS_ROUTE = "/iclock/api/terminals/"


@pytest.fixture
def sim() -> BioTimeSim:
    """A seeded simulated BioTime server with 11 terminals, links on an internal host."""
    return BioTimeSim(seed=2, terminals=11, internal_host="biotime-internal.corp:8081")


@pytest.fixture
async def running(sim: BioTimeSim) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    async with serve(create_app(sim), prefix=BASE_PATH) as served:
        yield served


def make_client(session: aiohttp.ClientSession, url: str, **options: Any) -> BioTimeClient:
    """A client with fast retries."""
    return BioTimeClient(session, url, **{"retry": FAST, **options})


@pytest.fixture
def client(session: aiohttp.ClientSession, running: Running, sim: BioTimeSim) -> BioTimeClient:
    """A JWT client of the simulator, paging 4 at a time."""
    return make_client(session, running.url, username=sim.username, password=sim.password,
                       page_size=4)


async def test_terminals_follow_internal_next_links_by_query_only(
        client: BioTimeClient, running: Running, sim: BioTimeSim) -> None:
    """`next` names an unreachable internal host; its query alone fetches every page."""
    terminals = [t async for t in client.iter_terminals()]
    assert [t.sn for t in terminals] == [t.sn for t in sorted(sim.terminals.values(),
                                                               key=lambda t: t.id)]
    assert running.counters[TERMINALS_ROUTE].requests == 3


async def test_legacy_servers_page_with_limit(session: aiohttp.ClientSession) -> None:
    """paging="limit" walks an older server that pages with `limit`."""
    sim = BioTimeSim(seed=2, terminals=7, legacy_paging=True)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, username=sim.username, password=sim.password,
                             page_size=3, paging="limit")
        ids = [t.id async for t in client.iter_terminals()]
    assert ids == sorted(sim.terminals)
    assert running.counters[TERMINALS_ROUTE].requests == 3


async def test_terminal_fields_are_typed_even_when_numbers_are_strings(
        client: BioTimeClient, sim: BioTimeSim) -> None:
    """state "1", terminal_tz "5" parse to ints; area, naive last_activity and extras are kept."""
    first = min(sim.terminals)
    sim.terminals[first].string_numbers = True
    terminal = await client.get_terminal(first)
    expected = sim.terminal_json(sim.terminals[first])
    assert isinstance(expected["state"], str)
    assert terminal.state == int(expected["state"])
    assert terminal.terminal_tz == int(expected["terminal_tz"])
    assert terminal.area is not None and terminal.area_code == expected["area"]["area_code"]
    assert terminal.area.name == expected["area"]["area_name"]
    assert terminal.last_activity is not None and terminal.last_activity.tzinfo is None
    assert terminal.last_activity.strftime("%Y-%m-%d %H:%M:%S") == expected["last_activity"]
    assert terminal.model_extra is not None
    assert terminal.model_extra["transfer_time"] == expected["transfer_time"]


async def test_unknown_terminal_is_not_found(client: BioTimeClient) -> None:
    """GET of a missing terminal id is VendorNotFound."""
    with pytest.raises(VendorNotFound):
        await client.get_terminal(99999)


async def test_jwt_is_renewed_before_its_exp(session: aiohttp.ClientSession) -> None:
    """Once our clock passes the JWT's renewal point, the next page logs in again first."""
    clock = Clock()
    sim = BioTimeSim(seed=2, terminals=9, now=clock.now)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, username=sim.username,
                             password=sim.password, page_size=4, clock=clock.unix)
        seen = 0
        async for _terminal in client.iter_terminals():
            seen += 1
            if seen == 1:
                clock.advance(seconds=sim.token_lifetime - 5)  # near exp for both sides
    assert seen == 9
    assert running.counters[LOGIN_ROUTE].requests == 2
    assert running.counters[TERMINALS_ROUTE].requests == 3  # nothing was refused and repeated


async def test_jwt_refused_with_401_is_renewed_once(session: aiohttp.ClientSession) -> None:
    """A JWT the server deems expired (our clock disagrees) costs one 401 and one new login."""
    clock = Clock()
    sim = BioTimeSim(seed=2, terminals=6, now=clock.now)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, username=sim.username,
                             password=sim.password, page_size=4)
        seen = 0
        async for _terminal in client.iter_terminals():
            seen += 1
            if seen == 1:
                clock.advance(seconds=sim.token_lifetime + 60)  # only the server's clock moves
    assert seen == 6
    assert running.counters[LOGIN_ROUTE].requests == 2
    assert running.counters[TERMINALS_ROUTE].requests == 3


async def test_static_token_auth_works_and_is_never_renewed(
        session: aiohttp.ClientSession, running: Running, sim: BioTimeSim) -> None:
    """`Token <t>` auth lists terminals; a wrong static token is VendorAuthError without login."""
    good = make_client(session, running.url, token=sim.api_token)
    assert len([t async for t in good.iter_terminals()]) == len(sim.terminals)
    bad = make_client(session, running.url, token="0" * 40)
    with pytest.raises(VendorAuthError, match="Invalid token") as caught:
        await bad.get_terminal(1)
    assert "0" * 40 not in str(caught.value)
    assert running.counters[LOGIN_ROUTE].requests == 0


async def test_wrong_password_is_an_auth_error_without_the_password(
        session: aiohttp.ClientSession, running: Running, sim: BioTimeSim) -> None:
    """A refused login is VendorAuthError; its text never contains the password."""
    password = "Sup3r-Secret-Pw"
    client = make_client(session, running.url, username=sim.username, password=password)
    with pytest.raises(VendorAuthError, match="login refused") as caught:
        await client.get_terminal(1)
    assert password not in str(caught.value)
    assert sim.password not in str(caught.value)


async def test_licence_gate_is_its_own_error(client: BioTimeClient, running: Running,
                                             sim: BioTimeSim) -> None:
    """A 403 from the licence gate is VendorLicenceError (an auth error) naming the licence."""
    sim.set_licensed(False)
    with pytest.raises(VendorLicenceError) as caught:
        await client.get_terminal(1)
    assert isinstance(caught.value, VendorAuthError)
    assert "licence" in str(caught.value).lower()
    assert running.counters[LOGIN_ROUTE].requests == 1  # a new token cannot help


async def test_html_answered_with_200_means_a_wrong_base_url(
        session: aiohttp.ClientSession, running: Running, sim: BioTimeSim) -> None:
    """A base_url that reaches the web UI (HTML, 200) raises a clear VendorFault."""
    client = make_client(session, running.url + "/ui", username=sim.username,
                         password=sim.password)
    with pytest.raises(VendorFault, match="base_url does not point at a BioTime API"):
        await client.get_terminal(1)


async def test_commands_reach_the_terminals(client: BioTimeClient, sim: BioTimeSim) -> None:
    """Each terminal command is accepted and recorded against every terminal named."""
    ids = sorted(sim.terminals)[:2]
    for action in (client.reboot, client.upload_transaction, client.upload_all,
                   client.clear_command, client.clear_capture, client.clear_all):
        outcome = await action(ids)
        assert outcome.ok and outcome.terminals == ids
    for terminal_id in ids:
        actions = [c.action for c in sim.commands_for(sim.terminals[terminal_id].sn)]
        assert actions == ["reboot", "upload_transaction", "upload_all", "clear_command",
                           "clear_capture", "clear_all"]


async def test_code_other_than_zero_is_a_bad_request(client: BioTimeClient) -> None:
    """A 200 answer with `code` ≠ 0 raises VendorBadRequest carrying `msg` and the code."""
    with pytest.raises(VendorBadRequest, match="do not exist") as caught:
        await client.reboot([424242])
    assert caught.value.code == "1"


async def test_transactions_after_an_id_in_ascending_order(client: BioTimeClient,
                                                           sim: BioTimeSim) -> None:
    """Only punches with id > after_id come back, ids ascending, late uploads included."""
    after = len(sim.transactions) // 2
    late = sim.upload_late(next(iter(sim.terminals.values())).sn, count=2)
    punches = [p async for p in client.iter_transactions(after_id=after)]
    ids = [p.id for p in punches]
    assert ids == sorted(ids) == [t.id for t in sim.transactions if t.id > after]
    assert {t.id for t in late} <= set(ids)
    assert all(p.punch_time.tzinfo is None and p.emp_code for p in punches)


def hostile(page: Callable[[web.Request], dict[str, Any]]) -> web.Application:
    """A tiny BioTime whose terminal list answers `page(request)`."""

    async def login(_request: web.Request) -> web.Response:
        return web.json_response({"token": "opaque"})

    async def terminals(request: web.Request) -> web.Response:
        return web.json_response(page(request))

    app = web.Application()
    app.router.add_post("/jwt-api-token-auth/", login)
    app.router.add_get("/iclock/api/terminals/", terminals)
    return app


def terminal(n: int, **fields: Any) -> dict[str, Any]:
    """A plausible terminal record."""
    return {"id": n, "sn": f"SN{n}", "alias": f"T{n}", "state": 1, **fields}


@pytest.mark.parametrize("case", ["repeating next", "endless next", "no query"])
async def test_pagination_that_never_ends_is_stopped(session: aiohttp.ClientSession,
                                                     case: str) -> None:
    """A next link that repeats, outruns `count`, or has no query raises VendorFault quickly."""
    calls = 0

    def page(request: web.Request) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        link = {"repeating next": "http://internal/iclock/api/terminals/?page=2",
                "endless next": f"http://internal/iclock/api/terminals/?page={calls + 1}",
                "no query": "http://internal/iclock/api/terminals/"}[case]
        return {"count": 4, "next": link, "previous": None, "code": 0, "msg": "",
                "data": [terminal(calls * 10 + i) for i in range(2)]}

    async with serve(hostile(page)) as running:
        client = make_client(session, running.url, username="u", password="p", page_size=2)
        with pytest.raises(VendorFault, match="pagination"):
            _ = [t async for t in client.iter_terminals()]
    assert calls <= 4


@pytest.mark.parametrize("bad", [
    {"state": 10**12}, {"sn": "X" * 10_000}, {"terminal_tz": "east"}, {"id": -1},
    {"last_activity": "yesterday-ish"},
])
async def test_absurd_values_are_a_fault_not_a_crash(session: aiohttp.ClientSession,
                                                     bad: dict[str, Any]) -> None:
    """Out-of-range numbers, huge strings and junk dates are rejected as VendorFault."""

    def page(_request: web.Request) -> dict[str, Any]:
        return {"count": 1, "next": None, "code": 0, "msg": "", "data": [terminal(1, **bad)]}

    async with serve(hostile(page)) as running:
        client = make_client(session, running.url, username="u", password="p")
        with pytest.raises(VendorFault, match="unexpected answer"):
            _ = [t async for t in client.iter_terminals()]


async def test_an_absurd_count_is_a_fault(session: aiohttp.ClientSession) -> None:
    """A negative `count` in the envelope is refused."""

    def page(_request: web.Request) -> dict[str, Any]:
        return {"count": -5, "next": None, "code": "0", "data": []}

    async with serve(hostile(page)) as running:
        client = make_client(session, running.url, username="u", password="p")
        with pytest.raises(VendorFault, match="count"):
            _ = [t async for t in client.iter_terminals()]


async def test_concurrent_401s_cost_one_login_and_lose_no_call(
        session: aiohttp.ClientSession) -> None:
    """Twenty calls in flight when the server stops accepting the JWT: all twenty complete, and
    the refusals cost exactly one new login, even for refusals that arrive after the renewal
    (the token each call was sent with is recorded per call, so a late refusal of the old token
    never drops the new one). Calls start 50 ms apart and each answer takes 200 ms."""
    clock = Clock()
    sim = BioTimeSim(seed=2, terminals=20, now=clock.now)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, username=sim.username,
                             password=sim.password, concurrency=20, rate=20)
        ids = sorted(t.id for t in [t async for t in client.iter_terminals()])
        running.faults.set(TERMINALS_ROUTE + "{id}/", FaultSpec(latency=0.2))
        clock.advance(seconds=sim.token_lifetime + 60)  # the server now refuses the JWT we hold
        got = await asyncio.gather(*(client.get_terminal(i) for i in ids))
    assert [t.id for t in got] == ids
    assert running.counters[LOGIN_ROUTE].requests == 2  # the first login and one renewal
    refused = running.counters[TERMINALS_ROUTE + "{id}/"].requests - len(ids)
    assert 2 <= refused < len(ids)  # several calls were refused; each was repeated once

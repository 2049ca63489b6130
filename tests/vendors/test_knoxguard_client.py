"""The Knox Guard client against the simulator: both auth modes, errors, blink rules, async calls."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from syncd.devtools.simulators.common import Running, serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, TOKEN_PATH, KnoxGuardSim, create_app
from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorNotFound,
    VendorRateLimited,
    VendorStateInvalid,
)
from syncd.vendors.knoxguard import Blink, KnoxGuardClient, KnoxRequestInvalid
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

CLIENT_ID = "kg-client-identifier-0001"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> KnoxGuardSim:
    """A tenant that accepts only the signed-token flow (no static token)."""
    return KnoxGuardSim(seed=7, devices=30, api_token="", clock=clock, transition_delay=0.05,
                        async_delay=0.05)


@pytest.fixture
def keys(sim: KnoxGuardSim) -> str:
    return sim.auth.register(CLIENT_ID)


@pytest.fixture
async def running(sim: KnoxGuardSim) -> AsyncIterator[Running]:
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        yield running


def origin(running: Running) -> str:
    return running.url.removesuffix(BASE_PATH)


@pytest.fixture
async def make_client(running: Running, keys: str, clock: Clock
                      ) -> AsyncIterator[Callable[..., KnoxGuardClient]]:
    async with aiohttp.ClientSession() as session:
        def build(**kwargs: Any) -> KnoxGuardClient:
            auth: dict[str, Any] = {"keys": keys, "client_identifier": CLIENT_ID,
                                    "token_url": origin(running) + TOKEN_PATH}
            if "api_token" in kwargs:
                auth = {}
            return KnoxGuardClient(session, running.url, clock=clock,
                                   **{"transaction_poll": 0.02, **auth, **kwargs})
        yield build


async def test_signed_token_flow_authorizes_and_reuses_one_token(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """keys.json + client id → one exchange; the signed API token is reused until renewal."""
    client = make_client()
    account = await client.authorization()
    assert account.user is not None and account.user.company_name
    for _ in range(5):
        await client.list_devices(0, 10)
    assert sim.auth.exchanges == 1 and client.token_fetches == 1
    assert sim.auth.jti_replays == 0


async def test_token_is_renewed_before_its_validity_runs_out(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient], clock: Clock) -> None:
    """29.5 minutes later the client builds a new token (fresh jti) before sending, with no 401."""
    client = make_client()
    await client.authorization()
    clock.advance(seconds=29.5 * 60)
    await client.authorization()
    assert sim.auth.exchanges == 2
    assert sim.auth.expired == 0 and sim.auth.jti_replays == 0
    assert len(sim.auth.jtis) == 4  # two client-identifier JWTs and two API tokens, all distinct


async def test_a_revoked_token_is_renewed_once_on_401(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """A 401 makes the client exchange again and repeat the call once; it succeeds."""
    client = make_client()
    await client.authorization()
    sim.auth.revoke_all()
    page = await client.list_devices(0, 5)
    assert len(page.items) == 5
    assert sim.auth.exchanges == 2


async def test_an_unregistered_key_is_an_auth_error_without_secrets(
        running: Running, clock: Clock) -> None:
    """Keys the tenant does not know are refused at the exchange: VendorAuthError, no key text."""
    other = KnoxGuardSim().auth.register("someone-else")
    async with aiohttp.ClientSession() as session:
        client = KnoxGuardClient(session, running.url, keys=other, client_identifier=CLIENT_ID,
                                 token_url=origin(running) + TOKEN_PATH, clock=clock)
        with pytest.raises(VendorAuthError) as err:
            await client.authorization()
    assert "4010000" in str(err.value)
    assert CLIENT_ID not in str(err.value)


async def test_a_reused_jti_is_refused_by_the_simulator(
        sim: KnoxGuardSim, running: Running, keys: str, clock: Clock) -> None:
    """Two different tokens carrying one jti: the second is refused 401 (a replay)."""
    pair = json.loads(keys)
    private = serialization.load_der_private_key(base64.b64decode(pair["Private"]), None)
    async with aiohttp.ClientSession() as session:
        client = KnoxGuardClient(session, running.url, keys=keys, client_identifier=CLIENT_ID,
                                 token_url=origin(running) + TOKEN_PATH, clock=clock)
        await client.authorization()
        access = next(iter(sim.auth.grants))
        now = int(clock())

        def token(iat: int) -> str:
            return jwt.encode({"accessToken": access, "publicKey": pair["Public"], "aud": "KnoxWSM",
                               "iat": iat, "exp": now + 600, "jti": "same-jti"},
                              private, algorithm="RS512")  # type: ignore[arg-type]

        statuses = []
        for headers in ({"x-knox-apitoken": token(now)}, {"x-knox-apitoken": token(now)},
                        {"x-knox-apitoken": token(now - 1)}):
            async with session.get(running.url + "/authorization", headers=headers) as resp:
                statuses.append(resp.status)
    assert statuses == [200, 200, 401]
    assert sim.auth.jti_replays == 1


async def test_static_token_mode_still_works(running: Running, sim: KnoxGuardSim) -> None:
    """With `api_token`, no exchange happens and the static header is sent."""
    static = KnoxGuardSim()
    async with serve(create_app(static), prefix=BASE_PATH) as run, \
            aiohttp.ClientSession() as session:
        client = KnoxGuardClient(session, run.url, api_token=static.api_token)
        page = await client.list_devices(0, 100)
        assert len(page.items) == 20 and page.total_count == 20
        bad = KnoxGuardClient(session, run.url, api_token="wrong-token")
        with pytest.raises(VendorAuthError):
            await bad.authorization()
    assert static.auth.exchanges == 0


async def test_state_invalid_not_found_and_bad_param_are_mapped(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """4000310 → VendorStateInvalid with the state; 404 → VendorNotFound; 4000000 → bad request."""
    client = make_client()
    pending = sim.fleet.in_state("Pending")[0].device_uid
    with pytest.raises(VendorStateInvalid) as err:
        await client.lock(pending)
    assert err.value.reason == "Current status is 'Pending'."
    with pytest.raises(VendorNotFound):
        await client.unlock("000000000000000")
    with pytest.raises(VendorNotFound):
        await client.get_device("000000000000000")
    with pytest.raises(VendorBadRequest):
        await client.approve("")


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"interval": 2}, "interval must be between 3 and 86400"),
    ({"interval": 86401}, "interval must be between 3 and 86400"),
    ({"message": "x" * 201}, "at most 200 characters (got 201)"),
    ({"message": " "}, "message is required"),
    ({"tel": None}, "tel) or an email"),
    ({"tel": None, "email": "not-an-email"}, "is not an email address"),
    ({"tel": "call me"}, "is not a phone number"),
    ({"time_limit_enable": True}, "timeLimit ([from hour, to hour]) is required"),
    ({"days_limit_enable": True, "time_limit": [6, 7]}, "daysLimit ([from weekday"),
    ({"time_limit": [23, 24]}, "timeLimit must be two whole numbers between 0 and 23"),
    ({"time_limit": [1, 2, 3]}, "timeLimit must be two whole numbers"),
    ({"days_limit_enable": True, "time_limit": [6, 7], "days_limit": [0, 7]},
     "daysLimit must be two whole numbers between 0 and 6"),
    ({"interval": "often"}, "blink: interval:"),
])
async def test_blink_is_validated_before_sending(
        running: Running, make_client: Callable[..., KnoxGuardClient],
        fields: dict[str, Any], fragment: str) -> None:
    """Each documented blink rule is enforced locally with a clear message; nothing is sent."""
    base = {"device_uid": "356938035643809", "interval": 3600, "message": "Payment overdue",
            "tel": "+998 90 123 45 67"}
    before = running.counters.requests
    with pytest.raises(KnoxRequestInvalid) as err:
        Blink.checked(**{**base, **fields})
    assert fragment in str(err.value)
    assert running.counters.requests == before


async def test_blink_and_async_lock_reach_their_states(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """A valid blink is accepted; lockAsync's outcome is read from /transaction once done."""
    client = make_client()
    enrolled = [d.device_uid for d in sim.fleet.in_state("Enrolled")]
    blink = Blink.checked(device_uid=enrolled[0], interval=3, message="Pay", email="a@b.uz",
                          days_limit_enable=True, time_limit=[6, 7], days_limit=[0, 1])
    assert (await client.blink(blink)).object_id == sim.device(enrolled[0]).object_id
    await sim.wait_for_state(enrolled[0], "Blinked")
    txn = await client.start_async("lock", {"deviceUid": enrolled[1]})
    result = await client.wait_transaction(txn)
    assert result.done and result.success == 1
    assert sim.device(enrolled[1]).status in ("Locking", "Locked")


async def test_uploads_post_list_and_detail(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """POST uploads sends the documented flags; the list carries totalCount; detail lists devices."""
    client = make_client()
    existing = next(iter(sim.devices))
    made = await client.upload_devices(["356938035643809", existing], auto_accept=True)
    assert (made.valid_device_count, made.invalid_device_count) == (1, 1)
    assert made.invalid_reasons[0].device_uid == existing
    assert sim.device("356938035643809").status == "Accepted"
    page = await client.get_uploads(0, 2)
    assert page.total_count == len(sim.fleet.uploads) and len(page.items) == 2
    assert made.upload_id is not None
    detail = await client.get_upload(made.upload_id)
    assert [(d.device_uid, d.result) for d in detail.devices] == [
        ("356938035643809", "SUCCESS"), (existing, "FAIL")]
    with pytest.raises(KnoxRequestInvalid):
        await client.upload_devices(["1"] * 10_001)


async def test_a_429_storm_is_ridden_out_with_retry_after(
        sim: KnoxGuardSim, make_client: Callable[..., KnoxGuardClient]) -> None:
    """Unpaced calls beyond the limit get 429s; the client retries them until all succeed."""
    sim.limiter.limit, sim.limiter.window = 5, 0.5
    client = make_client(rate=None, retry=RetryPolicy(max_retries=8, base_delay=0.05))
    pages = await asyncio.gather(*(client.list_devices(0, 5) for _ in range(15)))
    assert all(len(p.items) == 5 for p in pages)
    storm = make_client(rate=None, retry=RetryPolicy(max_retries=0))
    with pytest.raises(VendorRateLimited):
        await asyncio.gather(*(storm.list_devices(0, 5) for _ in range(15)))

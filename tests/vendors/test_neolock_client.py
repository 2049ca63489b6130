"""NeoLockClient against the NeoLock simulator (and tiny servers for what it does not do)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.devtools.simulators.neolock import BASE_PATH, NeoLockSim, create_app
from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorFault,
    VendorNotFound,
    VendorStateInvalid,
    VendorTransportError,
)
from syncd.vendors.neolock import NeoLockClient
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import FIXED, Clock

FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)
DEVICE_ROUTE = BASE_PATH + "/clients/devices/{deviceUid}"
UPLOADS_ROUTE = BASE_PATH + "/clients/devices/uploads"
TOKEN_ROUTE = BASE_PATH + "/clients/token"


@pytest.fixture
def sim() -> NeoLockSim:
    """A seeded simulated NeoLock account with 25 devices."""
    return NeoLockSim(seed=3, devices=25, transition_delay=0.05)


@pytest.fixture
async def running(sim: NeoLockSim) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    async with serve(create_app(sim), prefix=BASE_PATH) as served:
        yield served


def make_client(session: aiohttp.ClientSession, url: str, login: str, password: str,
                **options: Any) -> NeoLockClient:
    """A client with fast retries and no pacing unless asked."""
    return NeoLockClient(session, url, login, password, **{"rate": None, "retry": FAST, **options})


@pytest.fixture
def client(session: aiohttp.ClientSession, running: Running, sim: NeoLockSim) -> NeoLockClient:
    """A client of the simulator."""
    return make_client(session, running.url, sim.login, sim.password)


def uid_in(sim: NeoLockSim, state: str) -> str:
    """A device uid put in `state`."""
    uid = next(iter(sim.devices))
    sim.set_state(uid, state)
    return uid


async def test_token_is_fetched_once_and_reused(client: NeoLockClient, running: Running,
                                                sim: NeoLockSim) -> None:
    """Consecutive calls share one cached token."""
    for uid in list(sim.devices)[:3]:
        await client.get_device(uid)
    assert running.counters[TOKEN_ROUTE].requests == 1
    assert client.requests == 4


async def test_token_is_renewed_before_expiry_in_the_middle_of_paging(
        session: aiohttp.ClientSession, running: Running, sim: NeoLockSim) -> None:
    """Past its renewal point, the token is replaced before the next page: no 401 round trip."""
    clock = Clock()
    client = make_client(session, running.url, sim.login, sim.password, clock=clock)
    pages = 0
    async for _page in client.iter_upload_pages(page_size=10):
        pages += 1
        if pages == 1:
            clock.advance(seconds=sim.token_lifetime)  # by our clock, the token has now expired
    assert pages == 3
    assert running.counters[TOKEN_ROUTE].requests == 2
    assert running.counters[UPLOADS_ROUTE].requests == 3  # no page was refused and repeated


async def test_token_is_renewed_once_on_401_and_the_call_repeated(
        client: NeoLockClient, running: Running, sim: NeoLockSim) -> None:
    """A server-side expiry mid-paging costs one 401, one renewal and one repeat."""
    uids = []
    async for page in client.iter_upload_pages(page_size=10):
        uids += [u.device_uid for u in page.items]
        sim.expire_tokens()
    assert sorted(uids) == sorted(sim.devices)
    assert client.token_fetches == 3  # the first, then one per refused page
    assert running.counters[UPLOADS_ROUTE].requests == 3 + 2


async def test_wrong_credentials_are_an_auth_error_without_the_password(
        session: aiohttp.ClientSession, running: Running, sim: NeoLockSim) -> None:
    """Bad Basic credentials raise VendorAuthError whose text never holds the password."""
    password = "hunter2-very-secret"
    client = make_client(session, running.url, sim.login, password)
    with pytest.raises(VendorAuthError) as caught:
        await client.get_device(next(iter(sim.devices)))
    assert password not in str(caught.value)
    assert password not in repr(caught.value.args)
    assert "401" in str(caught.value)


async def test_a_refusal_that_survives_renewal_is_an_auth_error(
        session: aiohttp.ClientSession) -> None:
    """If the renewed token is refused too, VendorAuthError is raised after exactly one renewal."""
    token_calls = refusals = 0

    async def token(_request: web.Request) -> web.Response:
        nonlocal token_calls
        token_calls += 1
        return web.json_response({"code": 200, "data": {"access_token": f"tok-{token_calls}"}})

    async def refuse(_request: web.Request) -> web.Response:
        nonlocal refusals
        refusals += 1
        return web.json_response({"code": 403, "message": "Forbidden\nЗапрещено",
                                  "error": "FORBIDDEN", "path": "/api", "timestamp": 1}, status=403)

    app = web.Application()
    app.router.add_get("/api/clients/token", token)
    app.router.add_get("/api/clients/devices/{uid}", refuse)
    async with serve(app, prefix="/api") as running:
        client = make_client(session, running.url, "me", "pw")
        with pytest.raises(VendorAuthError, match="Forbidden"):
            await client.get_device("123")
    assert (token_calls, refusals) == (2, 2)


async def test_uploads_are_posted_then_paged_in_full(client: NeoLockClient,
                                                     sim: NeoLockSim) -> None:
    """Uploaded devices show up in the paged upload listing with their fields."""
    result = await client.upload_devices(["356938035643809", "356938035643809", "bad"],
                                         auto_accept=True)
    assert result.total_device_count == 3
    assert result.valid_device_count is not None and result.invalid_device_count is not None
    assert result.invalid_reasons
    listed = [u async for u in client.iter_uploads(page_size=7)]
    assert [u.device_uid for u in listed] == sorted(
        (d.device_uid for d in sim.devices.values() if d.upload_id),
        key=lambda uid: sim.devices[uid].row_id)
    assert "356938035643809" in {u.device_uid for u in listed}
    assert all(u.upload_id for u in listed)


async def test_device_details_are_typed_and_the_raw_object_kept(client: NeoLockClient,
                                                                sim: NeoLockSim) -> None:
    """get_device exposes uid, IMEIs, Knox status and licence expiry; raw() is the vendor dict."""
    uid = uid_in(sim, "Locked")
    device = await client.get_device(uid)
    expected = sim.device(uid)
    assert (device.device_uid, device.imei, device.imei2, device.status) == (
        uid, expected.imei, expected.imei2, "Locked")
    assert device.license_expiry is not None and device.license_expiry.tzinfo is not None
    assert device.raw()["deviceUid"] == uid
    assert device.raw()["licenseExpiryDate"] == expected.license_expiry_date


async def test_unknown_device_is_not_found(client: NeoLockClient) -> None:
    """The documented 404 body becomes VendorNotFound, with the English half of the message."""
    with pytest.raises(VendorNotFound, match="Device not found") as caught:
        await client.get_device("000000000000000")
    assert "Устройство" not in str(caught.value)


async def test_state_invalid_carries_the_knox_code_and_reason(client: NeoLockClient,
                                                              sim: NeoLockSim) -> None:
    """Approving an enrolled device raises VendorStateInvalid(4000310, reason)."""
    uid = uid_in(sim, "Enrolled")
    with pytest.raises(VendorStateInvalid) as caught:
        await client.approve(uid)
    assert caught.value.code == 4000310
    assert caught.value.reason and "Enrolled" in caught.value.reason


async def test_device_actions_change_the_device(client: NeoLockClient, sim: NeoLockSim) -> None:
    """lock, unlock, sendMessage, offline PIN and complete succeed and reach the device."""
    uid = uid_in(sim, "Enrolled")
    locked = await client.lock(uid, "Please pay", "+998901234567")
    assert locked.succeeded and locked.object_id == sim.device(uid).object_id
    assert sim.device(uid).status in ("Locking", "Locked")
    sim.set_state(uid, "Locked")
    assert (await client.unlock(uid)).succeeded
    sim.set_state(uid, "Enrolled")
    assert (await client.send_message(uid, "hello")).succeeded
    with pytest.raises(VendorBadRequest, match="message is required"):
        await client.send_message(uid, "")
    pin = await client.offline_lock_pin(uid, "123456")
    assert len(pin.pin_number) == 1 and pin.pin_number[0].isdigit()
    assert (await client.complete(uid)).succeeded


async def test_approve_and_delete(client: NeoLockClient, sim: NeoLockSim) -> None:
    """approve answers the Knox success code; delete removes the device."""
    uid = uid_in(sim, "Pending")
    approved = await client.approve(uid)
    assert approved.succeeded and str(approved.code) == "2000000"
    assert (await client.delete(uid)).succeeded
    assert uid not in sim.devices


async def test_subscription_is_registered_and_deleted_without_an_id(
        client: NeoLockClient, sim: NeoLockSim) -> None:
    """POST registers the push URL; DELETE (no id) drops it; a second DELETE is not found."""
    await client.register_subscription("https://syncd.example/hooks/neolock/s3cret")
    assert sim.subscription == "https://syncd.example/hooks/neolock/s3cret"
    reply = await client.delete_subscription()
    assert reply.message == "Subscription deleted"
    assert sim.subscription is None
    with pytest.raises(VendorNotFound):
        await client.delete_subscription()


async def test_a_5xx_storm_is_retried_then_a_fault(client: NeoLockClient, running: Running,
                                                   sim: NeoLockSim) -> None:
    """502 "Tertiary endpoint error" on every try: retried, then VendorFault."""
    running.faults.set(DEVICE_ROUTE, FaultSpec(tertiary_rate=1.0))
    with pytest.raises(VendorFault, match="502"):
        await client.get_device(next(iter(sim.devices)))
    assert running.counters[DEVICE_ROUTE].requests == FAST.max_retries + 1


@pytest.mark.parametrize("fault", [FaultSpec(malformed_rate=1.0), FaultSpec(truncate_rate=1.0)])
async def test_malformed_or_truncated_json_is_a_fault(client: NeoLockClient, running: Running,
                                                      sim: NeoLockSim, fault: FaultSpec) -> None:
    """A 200 whose JSON is broken or cut in half is VendorFault chained to the decode error."""
    running.faults.set(DEVICE_ROUTE, fault)
    with pytest.raises(VendorFault, match="JSON") as caught:
        await client.get_device(next(iter(sim.devices)))
    assert isinstance(caught.value.__cause__, ValueError)


async def test_a_hung_vendor_is_a_transport_error(session: aiohttp.ClientSession,
                                                  running: Running, sim: NeoLockSim) -> None:
    """A route that never answers times out into VendorTransportError."""
    running.faults.set(DEVICE_ROUTE, FaultSpec(hang_rate=1.0))
    client = make_client(session, running.url, sim.login, sim.password, timeout=0.2,
                         retry=RetryPolicy(max_retries=1, base_delay=0.01))
    with pytest.raises(VendorTransportError, match="timed out"):
        await client.get_device(next(iter(sim.devices)))


async def test_the_pacer_keeps_under_the_vendor_limit(session: aiohttp.ClientSession) -> None:
    """Paced at the simulator's own strict limit, 30 concurrent calls are never refused 429."""
    sim = NeoLockSim(seed=4, devices=5, rate_limit=15)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, sim.login, sim.password, rate=15)
        uids = list(sim.devices) * 6
        await asyncio.gather(*(client.get_device(uid) for uid in uids))
    assert running.counters.rate_limited == 0


async def test_429_from_the_vendor_is_waited_out(session: aiohttp.ClientSession) -> None:
    """Unpaced bursts past the limit get 429 + Retry-After, and every call still succeeds."""
    sim = NeoLockSim(seed=5, devices=6, rate_limit=4)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        client = make_client(session, running.url, sim.login, sim.password)
        devices = await asyncio.gather(*(client.get_device(uid) for uid in sim.devices))
    assert len(devices) == 6
    assert running.counters.rate_limited >= 1


async def test_an_unreachable_vendor_is_a_transport_error(session: aiohttp.ClientSession) -> None:
    """Connection refused becomes VendorTransportError."""
    client = make_client(session, "http://127.0.0.1:9/api", "me", "pw")
    with pytest.raises(VendorTransportError):
        await client.get_device("1")


def envelope_server(device_body: dict[str, Any], action_body: dict[str, Any],
                    action_status: int = 200) -> web.Application:
    """A tiny NeoLock answering the device GET and the lock POST with the given bodies."""

    def answer(body: dict[str, Any], status: int = 200) -> Callable[[web.Request],
                                                                    Awaitable[web.Response]]:
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response(body, status=status)
        return handler

    app = web.Application()
    app.router.add_get("/api/clients/token",
                       answer({"result": "SUCCESS", "access_token": "tok", "expires_in": 600}))
    app.router.add_get("/api/clients/devices/{uid}", answer(device_body))
    app.router.add_post("/api/clients/devices/lock", answer(action_body, action_status))
    return app


@pytest.mark.parametrize("style", ["result", "code/message/data"])
async def test_both_envelope_styles_parse(session: aiohttp.ClientSession, style: str) -> None:
    """`result: SUCCESS` and `code/message/data` answers give the same typed models."""
    device = {"deviceUid": "351", "imei": "351", "imei2": "352", "status": "Locked",
              "licenseExpiryDate": 1767225600000, "extraField": [1]}
    action = {"objectId": "obj-1", "requestedId": "req-1"}
    bodies: tuple[dict[str, Any], dict[str, Any]]
    if style == "result":
        bodies = ({"result": "SUCCESS", "device": device}, {"result": "success", **action})
    else:
        bodies = ({"code": 0, "message": "", "data": device},
                  {"code": 200, "message": "OK", "data": action})
    async with serve(envelope_server(*bodies), prefix="/api") as running:
        client = make_client(session, running.url, "me", "pw")
        got = await client.get_device("351")
        locked = await client.lock("351", "pay", "+1")
    assert (got.device_uid, got.imei2, got.status) == ("351", "352", "Locked")
    assert got.model_extra == {"extraField": [1]}
    assert got.raw() == device
    assert (locked.object_id, locked.requested_id, locked.succeeded) == ("obj-1", "req-1", True)


async def test_a_knox_failure_answered_with_200_is_still_an_error(
        session: aiohttp.ClientSession) -> None:
    """`{result: FAIL, error: {…}}` with HTTP 200 raises, not returns."""
    failure = {"result": "FAIL", "error": {"code": 4000310, "message": "DEVICE_STATE_INVALID",
                                           "reason": "Current status is 'Completed'."}}
    async with serve(envelope_server({}, failure), prefix="/api") as running:
        client = make_client(session, running.url, "me", "pw")
        with pytest.raises(VendorStateInvalid, match="Completed") as caught:
            await client.lock("351", "pay", "+1")
    assert caught.value.code == 4000310


async def test_a_token_without_jwt_exp_uses_expires_in(session: aiohttp.ClientSession) -> None:
    """An opaque token's `expires_in` sets its renewal time."""
    device = {"result": "SUCCESS", "device": {"deviceUid": "351"}}
    clock = Clock(FIXED)
    async with serve(envelope_server(device, {}), prefix="/api") as running:
        client = make_client(session, running.url, "me", "pw", clock=clock)
        await client.get_device("351")
        clock.advance(seconds=500)
        await client.get_device("351")
        assert client.token_fetches == 1
        clock.advance(seconds=90)  # inside the renewal margin of a 600 s token
        await client.get_device("351")
        assert client.token_fetches == 2


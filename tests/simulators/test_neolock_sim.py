"""The NeoLock simulator answers as neolock-api.md and FIELD-NOTES describe, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.devtools.simulators.kg_core import STATES
from syncd.devtools.simulators.neolock import BASE_PATH, NeoLockSim, create_app
from syncd.devtools.simulators.neolock_push import PushEvent
from tests.waiting import wait_for

UNAUTHORIZED = ("Authorization required to do specific action\n"
                "Для выполнения определенных действий требуется авторизация")


class Receiver:
    """A push subscriber that answers `status` to the first `fail_first` POSTs, then 200."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first = fail_first
        self.status = status
        self.calls = 0
        self.bodies: list[Any] = []

    async def handle(self, request: web.Request) -> web.Response:
        """Record the push and answer."""
        self.calls += 1
        raw = await request.read()
        if self.calls <= self.fail_first:
            return web.Response(status=self.status)
        self.bodies.append(json.loads(raw))
        return web.Response(status=200)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """Serve `receiver` on port 0 and yield its hook URL."""
    app = web.Application()
    app.router.add_post("/hooks/neolock/secret", receiver.handle)
    async with serve(app) as running:
        yield running.url + "/hooks/neolock/secret"


@pytest.fixture
def sim() -> NeoLockSim:
    return NeoLockSim(seed=7, transition_delay=0.05, push_backoff=0.02, push_timeout=2.0)


@pytest.fixture
async def running(sim: NeoLockSim) -> AsyncIterator[Running]:
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        yield running


@pytest.fixture
def headers(sim: NeoLockSim) -> dict[str, str]:
    return {"x-knox-apitoken": sim.issue_token()}


async def call(session: aiohttp.ClientSession, method: str, url: str,
               **kwargs: Any) -> tuple[int, Any]:
    """Send a request; return the status and the decoded JSON body."""
    async with session.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


def basic(login: str, password: str) -> dict[str, str]:
    """An Authorization: Basic header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def uid_in(sim: NeoLockSim, state: str) -> str:
    """A device of the seeded fleet in `state`."""
    return sim.fleet.in_state(state)[0].device_uid


def assert_gateway_error(body: Any, code: int, error: str) -> None:
    """The body is the documented {code, message, error, path, timestamp} error."""
    assert body["code"] == code
    assert body["error"] == error
    assert body["path"] == "/api"
    assert isinstance(body["timestamp"], int)
    assert "\n" in body["message"]  # English, then Russian


def assert_state_invalid(status: int, body: Any, current: str) -> None:
    """The answer is the documented 4000310 DEVICE_STATE_INVALID error."""
    assert status == 400
    assert body == {"result": "FAIL", "error": {
        "code": 4000310, "message": "DEVICE_STATE_INVALID",
        "reason": f"Current status is '{current}'."}}


def test_seeded_fleet_covers_every_knox_state_and_is_deterministic() -> None:
    """Twenty seeded devices span all 14 Knox Guard states, identically for the same seed."""
    first, second = NeoLockSim(seed=3), NeoLockSim(seed=3)
    assert {d.status for d in first.devices.values()} == set(STATES)
    assert [(d.device_uid, d.status) for d in first.devices.values()] == \
        [(d.device_uid, d.status) for d in second.devices.values()]
    assert list(NeoLockSim(seed=4).devices) != list(first.devices)


async def test_token_is_issued_for_valid_basic_credentials(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession) -> None:
    """GET /clients/token with the right Basic credentials gives a token that opens the API."""
    status, body = await call(session, "GET", running.url + "/clients/token",
                              headers=basic(sim.login, sim.password))
    assert status == 200
    assert body["code"] == 200
    assert body["message"] == "OK"
    token = body["data"]["access_token"]
    status, _ = await call(session, "GET", f"{running.url}/clients/devices/{uid_in(sim, 'Locked')}",
                           headers={"x-knox-apitoken": token})
    assert status == 200


@pytest.mark.parametrize("auth", [{"Authorization": "Basic bm9wZQ=="}, {}, {"Authorization": "x"}])
async def test_bad_credentials_get_documented_401(
        running: Running, session: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    """Wrong, missing or malformed Basic credentials get the documented 401 body."""
    status, body = await call(session, "GET", running.url + "/clients/token", headers=auth)
    assert status == 401
    assert_gateway_error(body, 401, "UNAUTHORIZED")
    assert body["message"] == UNAUTHORIZED


async def test_expired_token_gets_documented_401(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession) -> None:
    """A token past its configured lifetime is refused with the documented 401 body."""
    sim.set_token_lifetime(0.2)
    _, body = await call(session, "GET", running.url + "/clients/token",
                         headers=basic(sim.login, sim.password))
    headers = {"x-knox-apitoken": body["data"]["access_token"]}
    url = f"{running.url}/clients/devices/{uid_in(sim, 'Enrolled')}"
    assert (await call(session, "GET", url, headers=headers))[0] == 200

    async def refused() -> bool:
        return (await call(session, "GET", url, headers=headers))[0] == 401

    await wait_for(refused, interval=0.05, what="the token to expire")
    status, body = await call(session, "GET", url, headers=headers)
    assert status == 401
    assert_gateway_error(body, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_unknown_or_missing_token_gets_documented_401(
        running: Running, session: aiohttp.ClientSession, token: str | None) -> None:
    """Every API route but /clients/token needs a token this simulator issued."""
    headers = {"x-knox-apitoken": token} if token else {}
    status, body = await call(session, "GET", running.url + "/clients/devices/uploads",
                              headers=headers)
    assert status == 401
    assert body["message"] == UNAUTHORIZED


async def test_upload_adds_devices_and_reports_invalid_ones(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """POST uploads takes new devices (Accepted with autoAccept) and lists the rejected ones."""
    existing = uid_in(sim, "Enrolled")
    payload = {"deviceList": [{"deviceUid": "356938035643809"}, {"deviceUid": existing},
                              {"deviceUid": "bad uid!"}], "autoAccept": True}
    status, body = await call(session, "POST", running.url + "/clients/devices/uploads",
                              json=payload, headers=headers)
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert body["uploadStatus"] == "Progress"
    assert body["uploadId"]
    assert (body["totalDeviceCount"], body["validDeviceCount"], body["invalidDeviceCount"]) == \
        (3, 1, 2)
    assert {"deviceUid": existing, "reason": "device already exists"} in body["invalidReasons"]
    assert sim.device("356938035643809").status == "Accepted"


async def test_upload_without_auto_accept_leaves_devices_pending(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Without autoAccept an uploaded device waits in Pending."""
    status, _ = await call(session, "POST", running.url + "/clients/devices/uploads", headers=headers,
                           json={"deviceList": [{"deviceUid": "R58N12ABCDE"}], "autoAccept": False})
    assert status == 200
    assert sim.device("R58N12ABCDE").status == "Pending"


@pytest.mark.parametrize("payload", [
    {"autoAccept": True}, {"deviceList": [], "autoAccept": "yes"}, {"deviceList": "x"}, [1, 2]])
async def test_malformed_upload_gets_400(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str],
        payload: Any) -> None:
    """An upload without a deviceList array or a boolean autoAccept is a 400 gateway error."""
    status, body = await call(session, "POST", running.url + "/clients/devices/uploads",
                              json=payload, headers=headers)
    assert status == 400
    assert_gateway_error(body, 400, "BAD_REQUEST")


async def test_uploads_are_paged(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """GET uploads pages from pageNum 0; a short page is the last, every device appears once."""
    rows: list[Any] = []
    for page_num in range(10):
        status, body = await call(session, "GET", running.url + "/clients/devices/uploads",
                                  params={"pageNum": page_num, "pageSize": 6}, headers=headers)
        assert status == 200
        assert body["code"] == 200
        rows += body["data"]
        if len(body["data"]) < 6:
            break
    assert page_num == 3
    assert sorted(r["deviceUid"] for r in rows) == sorted(sim.devices)
    assert set(rows[0]) == {"id", "deviceUid", "imei", "imei2", "serial", "model", "uploadID",
                            "uploadStatus", "status"}


@pytest.mark.parametrize("params", [{"pageNum": -1}, {"pageSize": 0}, {"pageSize": "ten"}])
async def test_uploads_refuse_invalid_paging(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str],
        params: dict[str, Any]) -> None:
    """A negative pageNum or a pageSize outside 1..1000 is a 400."""
    status, body = await call(session, "GET", running.url + "/clients/devices/uploads",
                              params=params, headers=headers)
    assert status == 400
    assert_gateway_error(body, 400, "BAD_REQUEST")


async def test_device_details_carry_documented_fields(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """GET a device returns its Knox state and every documented detail field."""
    uid = uid_in(sim, "Blinked")
    status, body = await call(session, "GET", f"{running.url}/clients/devices/{uid}",
                              headers=headers)
    assert status == 200
    device = body["device"]
    assert device["deviceUid"] == uid
    assert device["status"] == "Blinked"
    assert len(device) == 18
    assert isinstance(device["licenseExpiryDate"], int)


async def test_unknown_device_gets_documented_404(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """GET an unknown device gives the documented bilingual 404."""
    status, body = await call(session, "GET", running.url + "/clients/devices/000000000000000",
                              headers=headers)
    assert status == 404
    assert_gateway_error(body, 404, "NOT_FOUND")
    assert body["message"] == ("Device not found with 000000000000000\n"
                               "Устройство не найдено с 000000000000000")


async def test_approve_accepts_a_pending_device(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Approve moves a Pending device to Accepted and answers the documented SUCCESS body."""
    uid = uid_in(sim, "Pending")
    status, body = await call(session, "POST", running.url + "/clients/devices/approve",
                              json={"deviceUid": uid}, headers=headers)
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert body["code"] == 2000000
    assert body["objectId"] == sim.device(uid).object_id
    assert sim.device(uid).status == "Accepted"


async def test_approve_of_enrolled_device_gets_documented_state_error(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Approving an Enrolled device is refused exactly as the doc's example."""
    status, body = await call(session, "POST", running.url + "/clients/devices/approve",
                              json={"deviceUid": uid_in(sim, "Enrolled")}, headers=headers)
    assert_state_invalid(status, body, "Enrolled")


async def test_lock_goes_locking_then_locked_after_the_delay(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Lock answers "success" with the device Locking, which becomes Locked after the delay."""
    sim.set_transition_delay(0.2)
    uid = uid_in(sim, "Enrolled")
    status, body = await call(session, "POST", running.url + "/clients/devices/lock",
                              json={"deviceUid": uid, "message": "Pay", "tel": "+998"},
                              headers=headers)
    assert status == 200
    assert body["result"] == "success"
    assert body["requestedId"]
    assert sim.device(uid).status == "Locking"
    await asyncio.sleep(0.1)  # half the delay: what is shown is that nothing changes before it
    assert sim.device(uid).status == "Locking"
    await sim.wait_for_state(uid, "Locked", 2.0)
    assert sim.device(uid).message == "Pay"


@pytest.mark.parametrize("action", ["lock", "unlock", "complete", "delete", "approve",
                                    "sendMessage", "offlineDeviceLockPin"])
async def test_actions_on_unknown_device_get_documented_404(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str],
        action: str) -> None:
    """Every device action on an unknown deviceUid gives the documented 404."""
    status, body = await call(session, "POST", f"{running.url}/clients/devices/{action}",
                              json={"deviceUid": "111", "message": "m", "challenge": "c"},
                              headers=headers)
    assert status == 404
    assert_gateway_error(body, 404, "NOT_FOUND")


@pytest.mark.parametrize("action", ["lock", "unlock", "complete", "delete", "approve"])
async def test_actions_without_device_uid_get_400(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str],
        action: str) -> None:
    """A device action whose body has no deviceUid is a 400 gateway error."""
    status, body = await call(session, "POST", f"{running.url}/clients/devices/{action}",
                              data=b"not json", headers=headers)
    assert status == 400
    assert_gateway_error(body, 400, "BAD_REQUEST")


@pytest.mark.parametrize(("action", "state"), [
    ("lock", "Pending"), ("lock", "Completed"), ("unlock", "Enrolled"), ("complete", "Pending"),
    ("delete", "Locked"), ("sendMessage", "Pending"), ("offlineDeviceLockPin", "Completed")])
async def test_actions_refused_in_states_that_do_not_allow_them(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str], action: str, state: str) -> None:
    """An action the device's state does not allow gets 4000310 and leaves the state alone."""
    uid = uid_in(sim, state)
    status, body = await call(session, "POST", f"{running.url}/clients/devices/{action}",
                              json={"deviceUid": uid, "message": "m", "challenge": "c"},
                              headers=headers)
    assert_state_invalid(status, body, state)
    assert sim.device(uid).status == state


async def test_unlock_goes_unlocking_then_enrolled(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Unlock of a Locked device passes through Unlocking to Enrolled."""
    uid = uid_in(sim, "Locked")
    status, body = await call(session, "POST", running.url + "/clients/devices/unlock",
                              json={"deviceUid": uid, "message": "Thanks"}, headers=headers)
    assert status == 200
    assert body["result"] == "success"
    assert sim.device(uid).status == "Unlocking"
    await sim.wait_for_state(uid, "Enrolled", 2.0)


async def test_complete_goes_completing_then_completed(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Complete of an Enrolled device passes through Completing to Completed."""
    uid = uid_in(sim, "Enrolled")
    status, body = await call(session, "POST", running.url + "/clients/devices/complete",
                              json={"deviceUid": uid}, headers=headers)
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert sim.device(uid).status == "Completing"
    await sim.wait_for_state(uid, "Completed", 2.0)


async def test_delete_removes_a_completed_device(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Deleting a Completed device removes it: its GET then answers 404."""
    uid = uid_in(sim, "Completed")
    status, body = await call(session, "POST", running.url + "/clients/devices/delete",
                              json={"deviceUid": uid}, headers=headers)
    assert status == 200
    assert body["result"] == "SUCCESS"
    status, _ = await call(session, "GET", f"{running.url}/clients/devices/{uid}", headers=headers)
    assert status == 404


async def test_send_message_reaches_the_device(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """sendMessage stores the message on an Enrolled device; an empty message is a 400."""
    uid = uid_in(sim, "Enrolled")
    url = running.url + "/clients/devices/sendMessage"
    status, body = await call(session, "POST", url, json={"deviceUid": uid, "message": "Hi"},
                              headers=headers)
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert sim.device(uid).message == "Hi"
    assert sim.device(uid).status == "Enrolled"
    status, body = await call(session, "POST", url, json={"deviceUid": uid}, headers=headers)
    assert status == 400


async def test_offline_pin_is_eight_digits_and_stable(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """The offline PIN answers a challenge with the same 8 digits each time; no challenge is 400."""
    url = running.url + "/clients/devices/offlineDeviceLockPin"
    payload = {"deviceUid": uid_in(sim, "Locked"), "challenge": "123456"}
    _, first = await call(session, "POST", url, json=payload, headers=headers)
    status, again = await call(session, "POST", url, json=payload, headers=headers)
    assert status == 200
    assert first["result"] == "SUCCESS"
    assert first["pinNumber"] == again["pinNumber"]
    assert len(first["pinNumber"][0]) == 8
    assert first["pinNumber"][0].isdigit()
    status, _ = await call(session, "POST", url, json={"deviceUid": payload["deviceUid"]},
                           headers=headers)
    assert status == 400


async def test_subscription_is_one_per_client(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Create gives 201, a second create 409; delete (no id) gives 200, a second delete 404."""
    url = running.url + "/subscriptions/clients"
    status, body = await call(session, "POST", url, json={"url": "http://127.0.0.1:9/h"},
                              headers=headers)
    assert status == 201
    assert body["code"] == 201
    assert sim.subscription == "http://127.0.0.1:9/h"
    status, body = await call(session, "POST", url, json={"url": "http://127.0.0.1:9/x"},
                              headers=headers)
    assert status == 409
    assert_gateway_error(body, 409, "CONFLICT")
    status, body = await call(session, "DELETE", url, headers=headers)
    assert (status, body) == (200, {"code": 200, "message": "Subscription deleted"})
    status, body = await call(session, "DELETE", url, headers=headers)
    assert status == 404
    assert_gateway_error(body, 404, "NOT_FOUND")


async def test_subscription_needs_an_http_url(
        running: Running, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """A subscription URL that is missing or not http(s) is a 400."""
    status, body = await call(session, "POST", running.url + "/subscriptions/clients",
                              json={"url": "ftp://x"}, headers=headers)
    assert status == 400
    assert_gateway_error(body, 400, "BAD_REQUEST")


async def test_every_state_change_is_pushed_to_the_subscriber(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """A lock pushes KG_DEVICE_LOCKING then KG_DEVICE_LOCKED, in the documented module shape."""
    receiver = Receiver()
    async with receiving(receiver) as hook:
        await call(session, "POST", running.url + "/subscriptions/clients", json={"url": hook},
                   headers=headers)
        uid = uid_in(sim, "Enrolled")
        await call(session, "POST", running.url + "/clients/devices/lock",
                   json={"deviceUid": uid}, headers=headers)
        await sim.wait_for_state(uid, "Locked", 2.0)
        await sim.push.wait_idle(2.0)
    assert [(b["event"], b["status"], b["previousStatus"]) for b in receiver.bodies] == [
        ("KG_DEVICE_LOCKING", "Locking", "Enrolled"), ("KG_DEVICE_LOCKED", "Locked", "Locking")]
    body = receiver.bodies[0]
    assert body["deviceUid"] == uid
    assert body["imei"] == sim.device(uid).imei
    assert set(body) == {"id", "event", "deviceUid", "objectId", "imei", "imei2", "status",
                         "previousStatus", "timestamp"}
    assert [d.state for d in sim.deliveries] == ["delivered", "delivered"]


async def test_push_is_retried_with_backoff_until_2xx(sim: NeoLockSim, running: Running) -> None:
    """A push answered 500 three times is retried with doubling delays and delivered on the 4th."""
    receiver = Receiver(fail_first=3)
    async with receiving(receiver) as hook:
        sim.subscribe(hook)
        delivery = sim.push_event(uid_in(sim, "Locked"))
        assert delivery is not None
        await sim.push.wait_idle(3.0)
    assert [a.status for a in delivery.attempts] == [500, 500, 500, 200]
    assert delivery.state == "delivered"
    assert receiver.calls == 4
    gaps = [b.at - a.at for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)]
    for i, gap in enumerate(gaps):
        assert gap >= 0.02 * 2 ** i * 0.9
    assert receiver.bodies[0]["event"] == "KG_DEVICE_LOCKED"


async def test_push_gives_up_after_the_configured_attempts() -> None:
    """A subscriber that always answers 503 sees exactly max_attempts POSTs; the push fails."""
    sim = NeoLockSim(push_max_attempts=3, push_backoff=0.01)
    receiver = Receiver(fail_first=100, status=503)
    async with receiving(receiver) as hook, serve(create_app(sim), prefix=BASE_PATH):
        sim.subscribe(hook)
        delivery = sim.push_event(uid_in(sim, "Enrolled"))
        await sim.push.wait_idle(2.0)
    assert delivery is not None
    assert delivery.state == "failed"
    assert [a.status for a in delivery.attempts] == [503, 503, 503]
    assert receiver.calls == 3


async def test_push_connection_errors_are_retried() -> None:
    """A subscriber that refuses connections is retried; every attempt records the error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = NeoLockSim(push_max_attempts=2, push_backoff=0.01)
    async with serve(create_app(sim), prefix=BASE_PATH):
        sim.subscribe(f"http://127.0.0.1:{port}/hook")
        delivery = sim.push_event(uid_in(sim, "Enrolled"))
        await sim.push.wait_idle(3.0)
    assert delivery is not None
    assert delivery.state == "failed"
    assert [a.status for a in delivery.attempts] == [None, None]
    assert all(a.error for a in delivery.attempts)


async def test_push_body_shape_is_configurable(sim: NeoLockSim, running: Running) -> None:
    """A custom event_body decides what is POSTed."""
    def body(ev: PushEvent) -> dict[str, Any]:
        return {"type": ev.event, "imei": ev.change.device.imei}

    sim.event_body = body
    receiver = Receiver()
    async with receiving(receiver) as hook:
        sim.subscribe(hook)
        uid = uid_in(sim, "Blinked")
        sim.set_state(uid, "Locked")
        await sim.push.wait_idle(2.0)
    assert receiver.bodies == [{"type": "KG_DEVICE_LOCKED", "imei": sim.device(uid).imei}]


async def test_push_many_delivers_every_event(sim: NeoLockSim, running: Running) -> None:
    """push_many queues N events over the whole fleet and each is delivered exactly once."""
    receiver = Receiver()
    async with receiving(receiver) as hook:
        sim.subscribe(hook)
        deliveries = sim.push_many(300)
        await sim.push.wait_idle(10.0)
    assert len(deliveries) == 300
    assert all(d.state == "delivered" for d in deliveries)
    assert len({b["id"] for b in receiver.bodies}) == 300
    assert {b["deviceUid"] for b in receiver.bodies} == set(sim.devices)


async def test_no_subscription_means_no_push(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """State changes without a subscription are counted as skipped, not queued."""
    await call(session, "POST", running.url + "/clients/devices/lock",
               json={"deviceUid": uid_in(sim, "Enrolled")}, headers=headers)
    assert sim.push.skipped == 1
    assert not sim.deliveries
    assert sim.push.pending == 0


async def test_burst_of_100_passes_and_the_101st_gets_429(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """100 requests in one burst all pass; the 101st in the same second gets 429 + Retry-After."""
    url = f"{running.url}/clients/devices/{uid_in(sim, 'Enrolled')}"

    async def one() -> int:
        async with session.get(url, headers=headers) as resp:
            return resp.status

    assert await asyncio.gather(*(one() for _ in range(100))) == [200] * 100
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert_gateway_error(await resp.json(), 429, "TOO_MANY_REQUESTS")
    assert running.counters["/api/clients/devices/{deviceUid}"].rate_limited == 1
    other = {"x-knox-apitoken": sim.issue_token()}  # the limit is per token
    async with session.get(url, headers=other) as resp:
        assert resp.status == 200


async def test_spaced_requests_below_the_limit_never_see_429(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """Requests paced at 90/s for over a second are never refused."""
    url = f"{running.url}/clients/devices/{uid_in(sim, 'Enrolled')}"
    start = time.monotonic()
    statuses = []
    for i in range(100):
        await asyncio.sleep(max(0.0, start + i / 90 - time.monotonic()))
        async with session.get(url, headers=headers) as resp:
            statuses.append(resp.status)
    assert statuses == [200] * 100
    assert running.counters.rate_limited == 0


async def test_injected_faults_apply_to_simulator_routes(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """The shared fault injection reaches NeoLock routes (502 Tertiary endpoint error)."""
    running.faults.set("/api/clients/devices/lock", FaultSpec(tertiary_rate=1.0))
    status, body = await call(session, "POST", running.url + "/clients/devices/lock",
                              json={"deviceUid": uid_in(sim, "Enrolled")}, headers=headers)
    assert (status, body) == (502, {"message": "Tertiary endpoint error"})


async def test_shutdown_cancels_pending_transitions_and_pushes(
        session: aiohttp.ClientSession) -> None:
    """When the app stops, delayed transitions and push workers stop with it."""
    sim = NeoLockSim(transition_delay=0.1)
    receiver = Receiver()
    async with receiving(receiver) as hook:
        async with serve(create_app(sim), prefix=BASE_PATH) as running:
            sim.subscribe(hook)
            uid = uid_in(sim, "Enrolled")
            status, _ = await call(session, "POST", running.url + "/clients/devices/lock",
                                   json={"deviceUid": uid},
                                   headers={"x-knox-apitoken": sim.issue_token()})
            assert status == 200
            await sim.push.wait_idle(2.0)
        # Absences, shown over time: twice the transition delay, then a push's round trip.
        await asyncio.sleep(0.2)
        assert sim.device(uid).status == "Locking"
        sim.set_state(uid, "Locked")  # queued while stopped: nothing is sent
        await asyncio.sleep(0.05)
    assert [b["event"] for b in receiver.bodies] == ["KG_DEVICE_LOCKING"]
    assert sim.push.pending == 1


async def test_directly_added_device_is_listed_and_pushed(
        sim: NeoLockSim, running: Running, session: aiohttp.ClientSession,
        headers: dict[str, str]) -> None:
    """add_device pushes KG_DEVICE_PENDING and the device shows up in the uploads listing."""
    receiver = Receiver()
    async with receiving(receiver) as hook:
        sim.subscribe(hook)
        device = sim.add_device()
        await sim.push.wait_idle(2.0)
    assert [(b["event"], b["previousStatus"]) for b in receiver.bodies] == \
        [("KG_DEVICE_PENDING", None)]
    _, body = await call(session, "GET", running.url + "/clients/devices/uploads",
                         params={"pageSize": 1000}, headers=headers)
    assert body["data"][-1]["deviceUid"] == device.device_uid
    assert body["data"][-1]["status"] == "Pending"

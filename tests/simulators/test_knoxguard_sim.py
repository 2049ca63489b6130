"""The Knox Guard simulator answers as knox-guard-api.md and FIELD-NOTES describe, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from syncd.devtools.simulators.common import Running, serve
from syncd.devtools.simulators.kg_core import STATES
from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app
from tests.waiting import wait_for


@pytest.fixture
def sim() -> KnoxGuardSim:
    return KnoxGuardSim(seed=11, transition_delay=0.05, async_delay=0.1)


@pytest.fixture
async def running(sim: KnoxGuardSim) -> AsyncIterator[Running]:
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        yield running


@pytest.fixture
async def session(sim: KnoxGuardSim) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"x-knox-apitoken": sim.api_token}) as session:
        yield session


async def call(session: aiohttp.ClientSession, method: str, url: str,
               **kwargs: Any) -> tuple[int, Any]:
    """Send a request; return the status and the decoded JSON body."""
    async with session.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


def transaction_done(session: aiohttp.ClientSession, url: str,
                     transaction_id: str) -> Callable[[], Awaitable[bool]]:
    """A condition: /transaction at `url` has a result for every device of the request."""

    async def done() -> bool:
        _, body = await call(session, "POST", url, json={"transactionId": transaction_id})
        return bool(len(body["resultList"]) == body["count"])

    return done


def uid_in(sim: KnoxGuardSim, state: str) -> str:
    """A device of the seeded fleet in `state`."""
    return sim.fleet.in_state(state)[0].device_uid


def assert_fail(body: Any, code: int, message: str) -> None:
    """The body is a Knox error {result: FAIL, error: {code, message, reason}}."""
    assert body["result"] == "FAIL"
    assert body["error"]["code"] == code
    assert body["error"]["message"] == message
    assert isinstance(body["error"]["reason"], str)


BLINK = {"interval": 3600, "message": "Payment overdue", "tel": "+998901234567"}


def test_seeded_fleet_covers_every_knox_state() -> None:
    """Twenty seeded devices span all 14 Knox Guard states, identically for the same seed."""
    sim = KnoxGuardSim(seed=5)
    assert {d.status for d in sim.devices.values()} == set(STATES)
    assert list(sim.devices) == list(KnoxGuardSim(seed=5).devices)


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/authorization"), ("POST", "/devices/list"), ("GET", "/devices/uploads"),
    ("POST", "/devices/lockAsync"), ("POST", "/transaction")])
async def test_missing_or_wrong_token_gets_authorization_fail(
        running: Running, token: str | None, method: str, path: str) -> None:
    """Every route refuses a missing or wrong x-knox-apitoken with 401 4010000."""
    headers = {"x-knox-apitoken": token} if token else {}
    async with aiohttp.ClientSession() as anonymous:
        status, body = await call(anonymous, method, running.url + path, headers=headers, json={})
    assert status == 401
    assert_fail(body, 4010000, "AUTHORIZATION_FAIL")


async def test_authorization_describes_the_account(
        running: Running, session: aiohttp.ClientSession) -> None:
    """GET /authorization with the sim's token returns SUCCESS and the user."""
    status, body = await call(session, "GET", running.url + "/authorization")
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert set(body["user"]) == {"companyName", "country", "email", "name", "phoneNumber"}


async def test_upload_adds_devices_and_reports_invalid_ones(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """POST uploads answers uploadID and counts; autoAccept makes new devices Accepted."""
    existing = uid_in(sim, "Locked")
    status, body = await call(session, "POST", running.url + "/devices/uploads", json={
        "deviceList": [{"deviceUid": "356938035643809"}, {"deviceUid": existing}],
        "autoAccept": True})
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert body["uploadID"]
    assert (body["totalDeviceCount"], body["validDeviceCount"], body["invalidDeviceCount"]) == \
        (2, 1, 1)
    assert body["invalidReasons"] == [{"deviceUid": existing, "reason": "device already exists"}]
    assert sim.device("356938035643809").status == "Accepted"


async def test_auto_accept_without_permission_defaults_to_false(running: Running) -> None:
    """Without the auto-accept role, autoAccept true still leaves uploads Pending."""
    sim = KnoxGuardSim(auto_accept_permitted=False)
    async with serve(create_app(sim), prefix=BASE_PATH) as run, aiohttp.ClientSession(
            headers={"x-knox-apitoken": sim.api_token}) as session:
        await call(session, "POST", run.url + "/devices/uploads",
                   json={"deviceList": [{"deviceUid": "R58N12ABCDE"}], "autoAccept": True})
    assert sim.device("R58N12ABCDE").status == "Pending"


@pytest.mark.parametrize("payload", [{}, {"deviceList": "x"}, {"deviceList": [{}] * 10_001}])
async def test_malformed_upload_gets_invalid_param(
        running: Running, session: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    """An upload without a deviceList of at most 10,000 devices is 400 4000000."""
    status, body = await call(session, "POST", running.url + "/devices/uploads", json=payload)
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")


async def test_upload_api_disabled_for_tenant_gets_403() -> None:
    """A tenant without the upload feature is refused with 403."""
    sim = KnoxGuardSim(upload_enabled=False)
    async with serve(create_app(sim), prefix=BASE_PATH) as run, aiohttp.ClientSession(
            headers={"x-knox-apitoken": sim.api_token}) as session:
        status, body = await call(session, "POST", run.url + "/devices/uploads",
                                  json={"deviceList": []})
    assert status == 403
    assert_fail(body, 4030000, "FORBIDDEN")


async def test_upload_list_has_total_count_and_pages(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """GET uploads returns totalCount and pages of upload batches."""
    status, body = await call(session, "GET", running.url + "/devices/uploads",
                              params={"pageNum": 1, "pageSize": 1})
    assert status == 200
    assert body["totalCount"] == 2
    assert len(body["uploads"]) == 1
    assert body["uploads"][0]["uploadId"] == list(sim.fleet.uploads)[1]
    assert body["uploads"][0]["totalDeviceCount"] == 10


@pytest.mark.parametrize("params", [{"pageNum": -1}, {"pageSize": 0}, {"pageSize": 1001}])
async def test_upload_list_refuses_invalid_paging(
        running: Running, session: aiohttp.ClientSession, params: dict[str, Any]) -> None:
    """pageNum < 0 or pageSize outside 1..1000 is 400 4000000."""
    status, body = await call(session, "GET", running.url + "/devices/uploads", params=params)
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")


async def test_upload_by_id_lists_its_devices_and_completes(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """GET uploads/{uploadId} lists the batch's devices; its status goes Progress → Completed."""
    _, made = await call(session, "POST", running.url + "/devices/uploads",
                         json={"deviceList": [{"deviceUid": "R58N12ABCDE"}, {"deviceUid": ""}]})
    url = f"{running.url}/devices/uploads/{made['uploadID']}"
    status, body = await call(session, "GET", url)
    assert status == 200
    assert body["status"] == "Progress"
    assert [(d["deviceUid"], d["result"]) for d in body["devices"]] == \
        [("R58N12ABCDE", "SUCCESS"), ("", "FAIL")]

    async def completed() -> bool:
        return bool((await call(session, "GET", url))[1]["status"] == "Completed")

    await wait_for(completed, interval=0.05, what="the upload to complete")


async def test_unknown_upload_id_gets_404(
        running: Running, session: aiohttp.ClientSession) -> None:
    """GET uploads/{uploadId} of an unknown id is a 404 FAIL body."""
    status, body = await call(session, "GET", running.url + "/devices/uploads/nope")
    assert status == 404
    assert_fail(body, 4040000, "UPLOAD_NOT_FOUND")


async def test_device_list_pages_and_counts(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """POST devices/list pages with {pageNum, pageSize}; totalCount counts every match."""
    seen: list[str] = []
    for page_num in range(5):
        status, body = await call(session, "POST", running.url + "/devices/list",
                                  json={"pageNum": page_num, "pageSize": 8})
        assert status == 200
        assert body["totalCount"] == 20
        seen += [d["deviceUid"] for d in body["deviceList"]]
        if len(body["deviceList"]) < 8:
            break
    assert seen == list(sim.devices)
    assert {"id", "imei", "serial", "approveId", "status"} <= set(body["deviceList"][0])


async def test_device_list_search_filters(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """search narrows the list to devices whose identifiers or state contain it."""
    uid = uid_in(sim, "Exchanging")
    status, body = await call(session, "POST", running.url + "/devices/list",
                              json={"pageNum": 0, "pageSize": 25, "search": uid})
    assert status == 200
    assert body["totalCount"] == 1
    assert body["deviceList"][0]["id"] == sim.device(uid).object_id
    _, body = await call(session, "POST", running.url + "/devices/list", json={"search": "locked"})
    assert {d["status"] for d in body["deviceList"]} == {"Locked"}


@pytest.mark.parametrize("payload", [{"pageSize": 0}, {"pageNum": "x"}, {"search": 5}])
async def test_device_list_refuses_invalid_parameters(
        running: Running, session: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    """Bad paging or a non-string search is 400 4000000."""
    status, body = await call(session, "POST", running.url + "/devices/list", json=payload)
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")


async def test_approve_accepts_a_pending_device(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Approve moves a Pending device to Accepted and keeps its approveId."""
    uid = uid_in(sim, "Pending")
    status, body = await call(session, "POST", running.url + "/devices/approve",
                              json={"deviceUid": uid, "approveId": "loan-1"})
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert body["requestedId"]
    assert body["objectId"] == sim.device(uid).object_id
    assert sim.device(uid).status == "Accepted"
    assert sim.device(uid).approve_id == "loan-1"


@pytest.mark.parametrize("payload", [{}, {"deviceUid": "x", "approveId": "a" * 51},
                                     {"deviceUid": "x", "approveComment": "c" * 1001}])
async def test_approve_refuses_invalid_parameters(
        running: Running, session: aiohttp.ClientSession, payload: dict[str, Any]) -> None:
    """Approve without deviceUid, or with too long approveId/approveComment, is 400 4000000."""
    status, body = await call(session, "POST", running.url + "/devices/approve", json=payload)
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")


async def test_approve_of_enrolled_device_gets_state_invalid(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Approving an Enrolled device is 400 4000310 naming the current state."""
    status, body = await call(session, "POST", running.url + "/devices/approve",
                              json={"deviceUid": uid_in(sim, "Enrolled")})
    assert status == 400
    assert body["error"] == {"code": 4000310, "message": "DEVICE_STATE_INVALID",
                             "reason": "Current status is 'Enrolled'."}


@pytest.mark.parametrize("action", ["approve", "lock", "unlock", "complete", "delete"])
async def test_actions_on_unknown_device_get_404(
        running: Running, session: aiohttp.ClientSession, action: str) -> None:
    """Device actions naming no known device are 404 DEVICE_NOT_FOUND."""
    status, body = await call(session, "POST", f"{running.url}/devices/{action}",
                              json={"deviceUid": "000"})
    assert status == 404
    assert_fail(body, 4040000, "DEVICE_NOT_FOUND")


async def test_blink_starts_reminder_then_blinked(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Blink of an Enrolled device passes through StartingReminder to Blinked."""
    uid = uid_in(sim, "Enrolled")
    status, body = await call(session, "POST", running.url + "/devices/blink",
                              json={**BLINK, "deviceUid": uid, "timeLimitEnable": True,
                                    "timeLimit": [23, 7], "daysLimit": None})
    assert status == 200
    assert body["result"] == "SUCCESS"
    assert sim.device(uid).status == "StartingReminder"
    await sim.wait_for_state(uid, "Blinked", 2.0)
    reminder = sim.device(uid).reminder
    assert reminder is not None
    assert reminder["interval"] == 3600


async def test_blink_identifies_by_object_id_first(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """objectId takes precedence over deviceUid when both are given."""
    target = sim.device(uid_in(sim, "Enrolled"))
    status, _ = await call(session, "POST", running.url + "/devices/blink", json={
        **BLINK, "objectId": target.object_id, "deviceUid": uid_in(sim, "Pending"),
        "interval": 3, "email": "pay@example.com"})
    assert status == 200
    assert target.status == "StartingReminder"


@pytest.mark.parametrize("change", [
    {"interval": 2}, {"interval": 86401}, {"interval": "60"}, {"interval": None},
    {"message": "m" * 201}, {"message": None}, {"tel": None},
    {"timeLimitEnable": True}, {"timeLimitEnable": True, "timeLimit": [24, 7]},
    {"timeLimitEnable": True, "timeLimit": [1, 2, 3]},
    {"daysLimitEnable": True, "daysLimit": [0, 1]},
    {"daysLimitEnable": True, "timeLimit": [6, 7]},
    {"daysLimitEnable": True, "timeLimit": [6, 7], "daysLimit": [0, 7]},
    {"deviceUid": None}])
async def test_blink_refuses_what_the_doc_forbids(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession,
        change: dict[str, Any]) -> None:
    """Blink enforces interval 3..86400, message ≤ 200, a contact and the time/day limit rules."""
    payload = {**BLINK, "deviceUid": uid_in(sim, "Enrolled"), **change}
    status, body = await call(session, "POST", running.url + "/devices/blink",
                              json={k: v for k, v in payload.items() if v is not None})
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")
    assert sim.device(uid_in(sim, "Enrolled")).reminder is None


async def test_blink_accepts_the_interval_bounds_and_day_limits(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Intervals of exactly 3 and 86400 s and day limits are accepted; a Blinked device re-blinks."""
    uid = uid_in(sim, "Enrolled")
    for interval in (3, 86400):
        status, _ = await call(session, "POST", running.url + "/devices/blink", json={
            **BLINK, "deviceUid": uid, "interval": interval, "daysLimitEnable": True,
            "timeLimit": [6, 7], "daysLimit": [0, 1]})
        assert status == 200
        await sim.wait_for_state(uid, "Blinked", 2.0)
    assert sim.device(uid).reminder == {"interval": 86400, "message": BLINK["message"],
                                        "timeLimitEnable": None, "daysLimitEnable": True,
                                        "timeLimit": [6, 7], "daysLimit": [0, 1]}


async def test_blink_of_locked_device_gets_state_invalid(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """A Locked device cannot be blinked: 400 4000310."""
    status, body = await call(session, "POST", running.url + "/devices/blink",
                              json={**BLINK, "deviceUid": uid_in(sim, "Locked")})
    assert status == 400
    assert_fail(body, 4000310, "DEVICE_STATE_INVALID")


async def test_lock_goes_locking_then_locked_after_the_delay(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Lock sets Locking at once and Locked after the configured delay."""
    sim.set_transition_delay(0.2)
    uid = uid_in(sim, "Blinked")
    status, _ = await call(session, "POST", running.url + "/devices/lock",
                           json={"deviceUid": uid, "message": "Pay now"})
    assert status == 200
    assert sim.device(uid).status == "Locking"
    await asyncio.sleep(0.1)  # half the delay: what is shown is that nothing changes before it
    assert sim.device(uid).status == "Locking"
    await sim.wait_for_state(uid, "Locked", 2.0)


@pytest.mark.parametrize(("action", "state", "after"), [
    ("unlock", "Locked", "Enrolled"), ("complete", "Locked", "Completed"),
    ("sendMessage", "Enrolled", "Enrolled")])
async def test_other_actions_follow_the_lifecycle(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession,
        action: str, state: str, after: str) -> None:
    """unlock, complete and sendMessage succeed in allowed states and end in the right state."""
    uid = uid_in(sim, state)
    status, body = await call(session, "POST", f"{running.url}/devices/{action}",
                              json={"deviceUid": uid, "message": "hello"})
    assert status == 200
    assert body["result"] == "SUCCESS"
    await sim.wait_for_state(uid, after, 2.0)


@pytest.mark.parametrize(("action", "state"), [
    ("lock", "Pending"), ("unlock", "Enrolled"), ("complete", "Rejected"),
    ("sendMessage", "Completed"), ("delete", "Enrolled")])
async def test_actions_refused_in_states_that_do_not_allow_them(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession,
        action: str, state: str) -> None:
    """Actions the device's state forbids are 400 4000310 and change nothing."""
    uid = uid_in(sim, state)
    status, body = await call(session, "POST", f"{running.url}/devices/{action}",
                              json={"deviceUid": uid, "message": "hello"})
    assert status == 400
    assert_fail(body, 4000310, "DEVICE_STATE_INVALID")
    assert sim.device(uid).status == state


async def test_delete_removes_a_rejected_device(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """Deleting a Rejected device removes it from devices/list."""
    uid = uid_in(sim, "Rejected")
    status, _ = await call(session, "POST", running.url + "/devices/delete", json={"deviceUid": uid})
    assert status == 200
    assert uid not in sim.devices
    _, body = await call(session, "POST", running.url + "/devices/list", json={"search": uid})
    assert body["totalCount"] == 0


async def test_async_lock_results_are_read_with_transaction(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """lockAsync answers the caller's transactionId; /transaction fills in per-device results."""
    good, wrong_state = uid_in(sim, "Enrolled"), uid_in(sim, "Pending")
    status, body = await call(session, "POST", running.url + "/devices/lockAsync",
                              headers={"x-knox-transactionId": "txn42"},
                              json={"message": "Pay", "deviceList": [
                                  {"deviceUid": good}, {"deviceUid": wrong_state},
                                  {"deviceUid": "000"}]})
    assert (status, body) == (200, {"result": "SUCCESS", "transactionId": "txn42"})
    url = running.url + "/transaction"
    status, body = await call(session, "POST", url, json={"transactionId": "txn42"})
    assert status == 200
    assert (body["count"], body["success"], body["fail"], body["resultList"]) == (3, 0, 0, [])
    await wait_for(transaction_done(session, url, "txn42"), interval=0.05,
                   what="the lock's per-device results")
    _, body = await call(session, "POST", url, json={"transactionId": "txn42"})
    assert (body["count"], body["success"], body["fail"]) == (3, 1, 2)
    errors = [r["error"]["message"] for r in body["resultList"] if r["result"] == "FAIL"]
    assert errors == ["DEVICE_STATE_INVALID", "DEVICE_NOT_FOUND"]
    assert sim.device(good).status in ("Locking", "Locked")


async def test_async_request_without_transaction_header_gets_one(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """An async request without x-knox-transactionId is given a generated transactionId."""
    uid = uid_in(sim, "Enrolled")
    _, body = await call(session, "POST", running.url + "/devices/blinkAsync",
                         json={**BLINK, "deviceUid": uid})
    await wait_for(transaction_done(session, running.url + "/transaction", body["transactionId"]),
                   interval=0.05, what="the blink's result")
    _, result = await call(session, "POST", running.url + "/transaction",
                           json={"transactionId": body["transactionId"]})
    assert result["success"] == 1
    assert result["resultList"][0]["deviceUid"] == uid


async def test_async_request_is_validated_up_front(
        sim: KnoxGuardSim, running: Running, session: aiohttp.ClientSession) -> None:
    """An async request with invalid parameters is refused at once with 400 4000000."""
    status, body = await call(session, "POST", running.url + "/devices/blinkAsync",
                              json={**BLINK, "interval": 1, "deviceUid": uid_in(sim, "Enrolled")})
    assert status == 400
    assert_fail(body, 4000000, "RESOURCE_INVALID_PARAM")
    assert not sim.transactions


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"transactionId": "unknown"}, 404, "TRANSACTION_NOT_FOUND"),
    ({}, 400, "RESOURCE_INVALID_PARAM")])
async def test_transaction_lookup_errors(
        running: Running, session: aiohttp.ClientSession, payload: dict[str, Any],
        status: int, message: str) -> None:
    """/transaction without an id is 400; with an unknown id 404."""
    got, body = await call(session, "POST", running.url + "/transaction", json=payload)
    assert got == status
    assert body["result"] == "FAIL"
    assert body["error"]["message"] == message


async def test_burst_of_100_passes_and_the_101st_gets_429(
        running: Running, session: aiohttp.ClientSession) -> None:
    """100 requests in one burst all pass; the 101st in the same second gets 429 + Retry-After."""
    url = running.url + "/authorization"

    async def one() -> int:
        async with session.get(url) as resp:
            return resp.status

    assert await asyncio.gather(*(one() for _ in range(100))) == [200] * 100
    async with session.get(url) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert_fail(await resp.json(), 4290000, "TOO_MANY_REQUESTS")
    assert running.counters[BASE_PATH + "/authorization"].rate_limited == 1


async def test_spaced_requests_below_the_limit_never_see_429(
        running: Running, session: aiohttp.ClientSession) -> None:
    """Requests paced at 90/s for over a second are never refused."""
    start = time.monotonic()
    statuses = []
    for i in range(100):
        await asyncio.sleep(max(0.0, start + i / 90 - time.monotonic()))
        async with session.get(running.url + "/authorization") as resp:
            statuses.append(resp.status)
    assert statuses == [200] * 100
    assert running.counters.rate_limited == 0


async def test_shutdown_cancels_pending_async_work(session: aiohttp.ClientSession) -> None:
    """When the app stops, queued async requests and delayed transitions stop with it."""
    sim = KnoxGuardSim(async_delay=0.1, api_token=session.headers["x-knox-apitoken"])
    async with serve(create_app(sim), prefix=BASE_PATH) as run:
        _, body = await call(session, "POST", run.url + "/devices/lockAsync",
                             json={"deviceUid": uid_in(sim, "Enrolled")})
    await asyncio.sleep(0.2)  # an absence, shown over time: twice the delay the request had
    assert sim.transactions[body["transactionId"]].results == []

"""Samsung Knox Guard simulator: the direct tenant API, served over real HTTP.

Routes (under BASE_PATH "/kcs/v1.1/kg", as in base_url https://eu-kcs-api.samsungknox.com/kcs/v1.1/kg),
per knox-guard-api.md and FIELD-NOTES: GET /authorization, POST /transaction, POST+GET
/devices/uploads, GET /devices/uploads/{uploadId}, POST /devices/list ({pageNum, pageSize, search}),
POST /devices/{approve,lock,unlock,blink,complete,sendMessage,delete} and their …Async variants,
whose per-device outcome is read with POST /transaction after `async_delay`.

Every route needs `x-knox-apitoken`: either the static `sim.api_token` ("" disables it) or a
signed API token from the Knox Cloud token flow, `POST /ams/v1/users/accesstoken` (outside BASE_PATH,
see knoxguard_auth.py; register a tenant key with `sim.auth.register(...)`); else 401 4010000
AUTHORIZATION_FAIL. 100 requests/s per token (429 + Retry-After). Errors are
`{result: "FAIL", error: {code, message, reason}}`: 400 4000000 RESOURCE_INVALID_PARAM,
400 4000310 DEVICE_STATE_INVALID, and (guesses)
404 4040000 DEVICE_NOT_FOUND / UPLOAD_NOT_FOUND / TRANSACTION_NOT_FOUND, 403 4030000 FORBIDDEN when
the tenant's upload feature is off, 429 4290000 TOO_MANY_REQUESTS.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

from aiohttp import web
from aiohttp.typedefs import Middleware

from syncd.devtools.simulators.common import Handler, SlidingWindowLimiter, make_app
from syncd.devtools.simulators.kg_core import (
    Device,
    DeviceNotFound,
    Fleet,
    FleetFacade,
    Refusal,
    StateInvalid,
    int_param,
    page,
    rate_limit_middleware,
    read_object,
    refusal_middleware,
)
from syncd.devtools.simulators.knoxguard_auth import AuthRefused, BadExchange, TokenAuthority
from syncd.devtools.simulators.knoxguard_rules import VALIDATORS, apply_params

BASE_PATH = "/kcs/v1.1/kg"
TOKEN_PATH = "/ams/v1/users/accesstoken"
TOKEN_HEADER = "x-knox-apitoken"
TRANSACTION_HEADER = "x-knox-transactionId"
DEFAULT_API_TOKEN = "kg-sim-api-token"
ACTIONS = {"approve": "approve", "lock": "lock", "unlock": "unlock", "blink": "blink",
           "complete": "complete", "sendMessage": "message", "delete": "delete"}


def fail(code: int, message: str, reason: str) -> dict[str, Any]:
    """A Knox Guard error body."""
    return {"result": "FAIL", "error": {"code": code, "message": message, "reason": reason}}


def _refuse(status: int, code: int, message: str, reason: str) -> NoReturn:
    raise Refusal(status, fail(code, message, reason))


def _invalid(reason: str) -> NoReturn:
    _refuse(400, 4000000, "RESOURCE_INVALID_PARAM", reason)


@dataclasses.dataclass
class Transaction:
    """An asynchronous request and the per-device results gathered so far."""

    transaction_id: str
    action: str
    count: int
    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The POST /transaction answer."""
        ok = sum(1 for r in self.results if r["result"] == "SUCCESS")
        return {"count": self.count, "fail": len(self.results) - ok, "resultList": self.results,
                "success": ok, "transactionId": self.transaction_id}


class KnoxGuardSim(FleetFacade):
    """The state of one Knox Guard tenant: API token, fleet, uploads, async transactions."""

    def __init__(self, *, seed: int = 0, devices: int = 20,
                 api_token: str = DEFAULT_API_TOKEN, clock: Callable[[], float] | None = None,
                 transition_delay: float = 0.5, enroll_delay: float | None = None,
                 async_delay: float = 0.2, rate_limit: int = 100, rate_window: float = 1.0,
                 upload_enabled: bool = True, auto_accept_permitted: bool = True) -> None:
        self.seed = seed
        self.api_token = api_token  # the static token; "": only the signed-token flow
        self.auth = TokenAuthority(clock) if clock is not None else TokenAuthority()
        self.async_delay = async_delay
        self.upload_enabled = upload_enabled  # the upload API is "only available upon request"
        self.auto_accept_permitted = auto_accept_permitted  # without the role, autoAccept is false
        self.fleet = Fleet(seed=seed, devices=devices, transition_delay=transition_delay,
                           enroll_delay=enroll_delay)
        self.limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.transactions: dict[str, Transaction] = {}
        # Test control: called with the pageNum after each devices/list page is built, so a test
        # can change the tenant (delete a device, move the clock) between two pages of a sync.
        self.after_list_page: Callable[[int], None] | None = None
        self.user = {"companyName": "Simulated Finance LLC", "country": "UZ",
                     "email": "kg-admin@example.com", "name": "KG Sim Admin",
                     "phoneNumber": "+998900000000"}

    def set_async_delay(self, seconds: float) -> None:
        """Set how long an …Async request takes before its results appear in /transaction."""
        self.async_delay = seconds

    def finish_transactions(self) -> int:
        """Carry out every queued …Async request now (test control); how many."""
        return self.fleet.fire_timers("txn:")


SIM_KEY = web.AppKey("knoxguard_sim", KnoxGuardSim)


def _auth_middleware(sim: KnoxGuardSim) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None or request.path == TOKEN_PATH:
            return await handler(request)
        token = request.headers.get(TOKEN_HEADER)
        if not token:
            _refuse(401, 4010000, "AUTHORIZATION_FAIL", "The x-knox-apitoken is missing")
        if not sim.api_token or token != sim.api_token:
            try:
                sim.auth.check_api_token(token)
            except AuthRefused as err:
                _refuse(401, 4010000, "AUTHORIZATION_FAIL", str(err))
        return await handler(request)

    return middleware


def _rate_key(request: web.Request) -> str:
    return request.headers.get(TOKEN_HEADER) or request.remote or "anonymous"


async def _body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    body = await read_object(request)
    if body is None:
        if optional and not await request.read():
            return {}
        _invalid("The request body must be a JSON object")
    return body


def _paging(num: Any, size: Any) -> tuple[int, int]:
    page_num, page_size = int_param(num, 0, 0, 1_000_000), int_param(size, 1000, 1, 1000)
    if page_num is None or page_size is None:
        _invalid("pageNum must be >= 0 and pageSize must be > 0 and <= 1000")
    return page_num, page_size


def list_item(d: Device) -> dict[str, Any]:
    """A device as POST /devices/list shows it."""
    return {
        "id": d.object_id, "deviceUid": d.device_uid, "imei": d.imei, "imei2": d.imei2,
        "serial": d.serial, "model": d.model, "status": d.status, "approveId": d.approve_id,
        "approveComment": d.approve_comment, "licenseState": d.license_state,
        "licenseExpiryDate": d.license_expiry_date, "createDate": d.create_date,
        "modifiedDate": d.modified_date, "uploadId": d.upload_id,
    }


# --- handlers -----------------------------------------------------------------------------------


async def access_token(request: web.Request) -> web.Response:
    """POST /ams/v1/users/accesstoken: exchange a signed client identifier JWT for an access token."""
    try:
        return web.json_response(request.app[SIM_KEY].auth.exchange(await _body(request)))
    except BadExchange as err:
        _invalid(str(err))
    except AuthRefused as err:
        _refuse(401, 4010000, "AUTHORIZATION_FAIL", str(err))


async def authorization(request: web.Request) -> web.Response:
    """GET /authorization: the account behind the token."""
    return web.json_response({"result": "SUCCESS", "user": request.app[SIM_KEY].user})


async def transaction(request: web.Request) -> web.Response:
    """POST /transaction: the results of an asynchronous request."""
    sim = request.app[SIM_KEY]
    txn_id = (await _body(request)).get("transactionId")
    if not isinstance(txn_id, str) or not txn_id:
        _invalid("transactionId is required")
    txn = sim.transactions.get(txn_id)
    if txn is None:
        _refuse(404, 4040000, "TRANSACTION_NOT_FOUND", f"No transaction {txn_id}")
    return web.json_response(txn.as_json())


async def post_uploads(request: web.Request) -> web.Response:
    """POST /devices/uploads: register devices (Pending, Accepted with autoAccept)."""
    sim = request.app[SIM_KEY]
    if not sim.upload_enabled:
        _refuse(403, 4030000, "FORBIDDEN", "The upload API is not enabled for this tenant")
    body = await _body(request)
    items = body.get("deviceList")
    if not isinstance(items, list) or len(items) > 10_000:
        _invalid("deviceList must be an array of 0 to 10000 devices")
    auto = body.get("autoAccept") is True and sim.auto_accept_permitted
    uids = [i.get("deviceUid", "") if isinstance(i, dict) else "" for i in items]
    batch = sim.fleet.upload(uids, auto_accept=auto)
    for entry in batch.entries:
        if entry.valid:
            sim.fleet.devices[entry.device_uid].auto_lock = body.get("autoLock") is True
    invalid = [{"deviceUid": e.device_uid, "reason": e.reason} for e in batch.entries if not e.valid]
    return web.json_response({
        "result": "SUCCESS", "uploadID": batch.upload_id, "uploadStatus": batch.status,
        "totalDeviceCount": len(batch.entries), "validDeviceCount": batch.valid_count,
        "invalidDeviceCount": len(invalid), "invalidReasons": invalid,
    })


async def get_uploads(request: web.Request) -> web.Response:
    """GET /devices/uploads: every upload batch, paged, with totalCount."""
    sim = request.app[SIM_KEY]
    page_num, page_size = _paging(request.query.get("pageNum"), request.query.get("pageSize"))
    batches = list(sim.fleet.uploads.values())
    uploads = [{
        "uploadId": b.upload_id, "uploadStatus": b.status, "createdTime": b.created,
        "totalDeviceCount": len(b.entries), "validDeviceCount": b.valid_count,
        "invalidDeviceCount": len(b.entries) - b.valid_count,
    } for b in page(batches, page_num, page_size)]
    return web.json_response({"result": "SUCCESS", "totalCount": len(batches), "uploads": uploads})


async def get_upload(request: web.Request) -> web.Response:
    """GET /devices/uploads/{uploadId}: the devices of one upload, paged."""
    sim = request.app[SIM_KEY]
    page_num, page_size = _paging(request.query.get("pageNum"), request.query.get("pageSize"))
    upload_id = request.match_info["uploadId"]
    batch = sim.fleet.uploads.get(upload_id)
    if batch is None:
        _refuse(404, 4040000, "UPLOAD_NOT_FOUND", f"No upload {upload_id}")
    devices = [{"deviceUid": e.device_uid, "result": "SUCCESS" if e.valid else "FAIL",
                "reason": e.reason} for e in page(batch.entries, page_num, page_size)]
    return web.json_response({"result": "SUCCESS", "status": batch.status, "devices": devices})


async def list_devices(request: web.Request) -> web.Response:
    """POST /devices/list: {pageNum, pageSize, search} → the matching devices and totalCount."""
    sim = request.app[SIM_KEY]
    body = await _body(request, optional=True)
    page_num, page_size = _paging(body.get("pageNum"), body.get("pageSize"))
    search = body.get("search")
    if search is not None and not isinstance(search, str):
        _invalid("search must be a string")
    needle = (search or "").casefold()
    found = [d for d in sim.fleet.devices.values() if not needle or any(
        needle in (v or "").casefold()
        for v in (d.device_uid, d.imei, d.imei2, d.serial, d.object_id, d.approve_id, d.status))]
    answer = {"result": "SUCCESS", "totalCount": len(found),
              "deviceList": [list_item(d) for d in page(found, page_num, page_size)]}
    if sim.after_list_page is not None:
        sim.after_list_page(page_num)
    return web.json_response(answer)


def _perform(sim: KnoxGuardSim, action: str, params: dict[str, Any]) -> Device:
    """Find the device `params` names, check its state and carry out `action` (Refusal if not)."""
    ids = {k: params.get(k) if isinstance(params.get(k), str) else None
           for k in ("objectId", "deviceUid", "approveId")}
    if action == "approve":
        ids["objectId"] = ids["approveId"] = None  # approve names the device by deviceUid only
    try:
        device = sim.fleet.find(object_id=ids["objectId"], device_uid=ids["deviceUid"],
                                approve_id=ids["approveId"])
        sim.fleet.check(device, action)
    except DeviceNotFound as err:
        _refuse(404, 4040000, "DEVICE_NOT_FOUND", f"Device not found: {err.args[0]}")
    except StateInvalid as err:
        _refuse(400, 4000310, "DEVICE_STATE_INVALID", str(err))
    apply_params(device, action, params)
    return sim.fleet.apply(device, action)


def _sync_handler(action: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        sim = request.app[SIM_KEY]
        params = await _body(request)
        VALIDATORS[action](params)
        device = _perform(sim, action, params)
        return web.json_response({"result": "SUCCESS", "objectId": device.object_id,
                                  "requestedId": uuid.uuid4().hex})

    handler.__doc__ = f"POST /devices/{action}: the synchronous request."
    return handler


def _async_handler(action: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        sim = request.app[SIM_KEY]
        body = await _body(request)
        items = body.pop("deviceList", None)
        if items is not None and (not isinstance(items, list) or not items or
                                  not all(isinstance(i, dict) for i in items)):
            _invalid("deviceList must be a non-empty array of device objects")
        requests = [{**body, **i} for i in items] if items is not None else [body]
        for params in requests:
            VALIDATORS[action](params)
        txn_id = request.headers.get(TRANSACTION_HEADER) or uuid.uuid4().hex
        txn = sim.transactions[txn_id] = Transaction(txn_id, action, len(requests))

        def run() -> None:
            for params in requests:
                try:
                    device = _perform(sim, action, params)
                except Refusal as refusal:
                    ident = params.get("objectId") or params.get("deviceUid") or params.get("approveId")
                    txn.results.append({"deviceUid": ident, "result": "FAIL",
                                        "error": refusal.body["error"]})
                else:
                    txn.results.append({"deviceUid": device.device_uid,
                                        "objectId": device.object_id, "result": "SUCCESS"})

        sim.fleet.schedule(f"txn:{txn_id}", sim.async_delay, run)
        return web.json_response({"result": "SUCCESS", "transactionId": txn_id})

    handler.__doc__ = f"POST /devices/{action}Async: queue the request, results via /transaction."
    return handler


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Delayed transitions and async requests live exactly as long as the app."""
    try:
        yield
    finally:
        app[SIM_KEY].fleet.cancel_timers()


def create_app(sim: KnoxGuardSim) -> web.Application:
    """The Knox Guard Application for `sim`, routes under BASE_PATH."""
    limiter = rate_limit_middleware(sim.limiter, _rate_key, lambda _r: fail(
        4290000, "TOO_MANY_REQUESTS", "More than 100 requests per second"))
    app = make_app(sim.seed, middlewares=[limiter, refusal_middleware, _auth_middleware(sim)])
    app[SIM_KEY] = sim
    app.cleanup_ctx.append(_background)
    app.router.add_post(TOKEN_PATH, access_token)
    app.router.add_get(BASE_PATH + "/authorization", authorization)
    app.router.add_post(BASE_PATH + "/transaction", transaction)
    app.router.add_post(BASE_PATH + "/devices/uploads", post_uploads)
    app.router.add_get(BASE_PATH + "/devices/uploads", get_uploads)
    app.router.add_get(BASE_PATH + "/devices/uploads/{uploadId}", get_upload)
    app.router.add_post(BASE_PATH + "/devices/list", list_devices)
    for name, action in ACTIONS.items():
        app.router.add_post(f"{BASE_PATH}/devices/{name}", _sync_handler(action))
        app.router.add_post(f"{BASE_PATH}/devices/{name}Async", _async_handler(action))
    return app

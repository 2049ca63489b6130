"""NeoLock simulator: the reseller phone-lock API over Samsung Knox Guard, served over real HTTP.

Routes (under BASE_PATH "/api", as in base_url https://api.neolock.uz/api), per neolock-api.md:
GET /clients/token (Basic login:password), POST+GET /clients/devices/uploads,
GET /clients/devices/{deviceUid}, POST /clients/devices/{approve,lock,unlock,complete,delete,
sendMessage,offlineDeviceLockPin}, POST+DELETE /subscriptions/clients. Every route but the token one
needs a live token in `x-knox-apitoken`; 100 requests/s per token (429 + Retry-After).

Envelopes follow the doc per endpoint: errors of the gateway (401, 404, 400, 409, 429) are
`{code, message, error, path: "/api", timestamp}` with an English/Russian message; refused state
changes are Knox-style `{result: "FAIL", error: {code: 4000310, message: "DEVICE_STATE_INVALID",
reason: "Current status is 'Enrolled'."}}` with HTTP 400 (the status is a guess).

Pushes (undocumented publicly; this shape is the simulator's choice): on every device state change
the simulator POSTs JSON to the subscribed URL:

    {"id": "<uuid4>", "event": "KG_DEVICE_LOCKED", "deviceUid": "...", "objectId": "...",
     "imei": "...", "imei2": "...", "status": "Locked", "previousStatus": "Locking",
     "timestamp": 1728225028579}

`event` is KG_DEVICE_ + the new state in upper snake case (KG_DEVICE_DELETED when a device is
deleted, previousStatus null when a device is added). Change the shape with
`sim.event_body = fn` (fn(PushEvent) -> dict, or bytes sent as is). Deliveries, with every attempt,
are in `sim.deliveries`; retries follow neolock_push.PushDelivery.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
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
    StateChange,
    StateInvalid,
    int_param,
    json_response,
    now_ms,
    page,
    rate_limit_middleware,
    read_object,
    refusal_middleware,
)
from syncd.devtools.simulators.neolock_push import Delivery, EventBody, PushDelivery, default_event_body

BASE_PATH = "/api"
TOKEN_HEADER = "x-knox-apitoken"

DEFAULT_LOGIN = "neolock-sim"
DEFAULT_PASSWORD = "neolock-sim-password"
MSG_UNAUTHORIZED = ("Authorization required to do specific action\n"
                    "Для выполнения определенных действий требуется авторизация")
MSG_NOT_FOUND = "Device not found with {uid}\nУстройство не найдено с {uid}"
MSG_BAD_REQUEST = "Invalid request: {reason}\nНекорректный запрос: {reason}"
MSG_TOO_MANY = "Too many requests\nСлишком много запросов"
MSG_SUB_EXISTS = "Subscription already exists\nПодписка уже существует"
MSG_SUB_MISSING = "Subscription not found\nПодписка не найдена"


class NeoLockSim(FleetFacade):
    """The state of one NeoLock client account: credentials, tokens, fleet, subscription, pushes."""

    def __init__(self, *, seed: int = 0, devices: int = 20, login: str = DEFAULT_LOGIN,
                 password: str = DEFAULT_PASSWORD, token_lifetime: float = 1800.0,
                 transition_delay: float = 0.5, enroll_delay: float | None = None,
                 rate_limit: int = 100, rate_window: float = 1.0,
                 push_max_attempts: int = 5, push_backoff: float = 0.5,
                 push_backoff_max: float = 30.0, push_timeout: float = 5.0,
                 push_concurrency: int = 4, event_body: EventBody = default_event_body,
                 subscription_conflict: bool = True) -> None:
        self.seed = seed
        self.login = login
        self.password = password
        self.token_lifetime = token_lifetime
        self.subscription_conflict = subscription_conflict  # False: POST replaces the subscription
        self.fleet = Fleet(seed=seed, devices=devices, transition_delay=transition_delay,
                           enroll_delay=enroll_delay)
        self.limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.push = PushDelivery(max_attempts=push_max_attempts, backoff=push_backoff,
                                 backoff_max=push_backoff_max, timeout=push_timeout,
                                 concurrency=push_concurrency, event_body=event_body)
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._signing_key = hashlib.sha256(f"neolock-sim-{seed}".encode()).digest()
        self.fleet.listeners.append(self._on_change)
        self._listing: tuple[tuple[int, int, int], list[tuple[Device, Any]]] | None = None

    def upload_rows(self) -> list[tuple[Device, Any]]:
        """Uploaded devices with their batch, in row id order.

        Kept between requests (a 100k fleet takes ~0.5 s to sort, once per page otherwise) and
        rebuilt when a device or batch is added or removed; states are read at answer time.
        """
        fleet = self.fleet
        key = (len(fleet.devices), fleet.next_row, len(fleet.uploads))
        if self._listing is None or self._listing[0] != key:
            uploads = fleet.uploads
            rows = sorted(((d, uploads[d.upload_id]) for d in fleet.devices.values()
                           if d.upload_id is not None and d.upload_id in uploads),
                          key=lambda r: r[0].row_id)
            self._listing = (key, rows)
        return self._listing[1]

    # --- what tests change directly ---------------------------------------------------------

    def set_token_lifetime(self, seconds: float) -> None:
        """Set the lifetime of tokens issued from now on."""
        self.token_lifetime = seconds

    def issue_token(self) -> str:
        """Issue a token as /clients/token would (a HS256 JWT with sub, iat, exp, jti)."""
        iat = int(time.time())
        claims = {"sub": self.login, "iat": iat, "exp": iat + int(self.token_lifetime),
                  "jti": secrets.token_hex(8)}
        parts = [_b64(json.dumps(p, separators=(",", ":")).encode())
                 for p in ({"alg": "HS256", "typ": "JWT"}, claims)]
        signing_input = ".".join(parts).encode()
        parts.append(_b64(hmac.new(self._signing_key, signing_input, hashlib.sha256).digest()))
        token = ".".join(parts)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return token

    def token_valid(self, token: str | None) -> bool:
        """True when the token was issued here and has not expired."""
        return token is not None and self.tokens.get(token, 0.0) > time.monotonic()

    def expire_tokens(self) -> None:
        """Make every issued token expired."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    @property
    def subscription(self) -> str | None:
        """The subscribed push URL, if any."""
        return self.push.url

    def subscribe(self, url: str | None) -> None:
        """Set (or with None, delete) the client's subscription directly."""
        self.push.url = url

    @property
    def event_body(self) -> EventBody:
        """The builder of push bodies."""
        return self.push.event_body

    @event_body.setter
    def event_body(self, fn: EventBody) -> None:
        self.push.event_body = fn

    @property
    def deliveries(self) -> collections.deque[Delivery]:
        """Every push delivery so far (state, attempts with statuses/errors, body)."""
        return self.push.log

    def push_event(self, device_uid: str, event: str | None = None) -> Delivery | None:
        """Push an event for the device's current state now (None without a subscription)."""
        device = dataclasses.replace(self.fleet.get(device_uid))
        change = StateChange(device, device.status, device.status, now_ms())
        return self.push.enqueue(change, event)

    def push_many(self, count: int, device_uids: Sequence[str] | None = None) -> list[Delivery]:
        """Push `count` events, cycling over the given devices (default: the whole fleet)."""
        uids = list(device_uids or self.fleet.devices)
        pushed = (self.push_event(uids[i % len(uids)]) for i in range(count))
        return [d for d in pushed if d is not None]

    def _on_change(self, change: StateChange) -> None:
        self.push.enqueue(change)


SIM_KEY = web.AppKey("neolock_sim", NeoLockSim)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _gateway_error(code: int, message: str, error: str) -> dict[str, Any]:
    return {"code": code, "message": message, "error": error, "path": BASE_PATH,
            "timestamp": now_ms()}


def _refuse(status: int, body: dict[str, Any]) -> NoReturn:
    raise Refusal(status, body)


def _bad_request(reason: str) -> NoReturn:
    _refuse(400, _gateway_error(400, MSG_BAD_REQUEST.format(reason=reason), "BAD_REQUEST"))


def _not_found(uid: str) -> NoReturn:
    _refuse(404, _gateway_error(404, MSG_NOT_FOUND.format(uid=uid), "NOT_FOUND"))


def _auth_middleware(sim: NeoLockSim) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        unmatched = request.match_info.http_exception is not None
        if unmatched or request.path == BASE_PATH + "/clients/token":
            return await handler(request)
        if not sim.token_valid(request.headers.get(TOKEN_HEADER)):
            return json_response(_gateway_error(401, MSG_UNAUTHORIZED, "UNAUTHORIZED"), 401)
        return await handler(request)

    return middleware


def _rate_key(request: web.Request) -> str:
    return (request.headers.get(TOKEN_HEADER) or request.headers.get("Authorization")
            or request.remote or "anonymous")


# --- handlers -----------------------------------------------------------------------------------


async def get_token(request: web.Request) -> web.Response:
    """GET /clients/token: Basic login:password → access_token."""
    sim = request.app[SIM_KEY]
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        login = password = ""
    if scheme.lower() != "basic" or not (
            hmac.compare_digest(login, sim.login) and hmac.compare_digest(password, sim.password)):
        return json_response(_gateway_error(401, MSG_UNAUTHORIZED, "UNAUTHORIZED"), 401)
    return json_response({"code": 200, "message": "OK", "data": {"access_token": sim.issue_token()}})


async def post_uploads(request: web.Request) -> web.Response:
    """POST /clients/devices/uploads: register devices (Pending, or Accepted with autoAccept)."""
    sim = request.app[SIM_KEY]
    body = await read_object(request)
    if body is None:
        _bad_request("body must be a JSON object")
    items, auto = body.get("deviceList"), body.get("autoAccept")
    if not isinstance(items, list) or len(items) > 10_000:
        _bad_request("deviceList must be an array of at most 10000 devices")
    if not isinstance(auto, bool):
        _bad_request("autoAccept is required")
    uids = [i.get("deviceUid", "") if isinstance(i, dict) else "" for i in items]
    batch = sim.fleet.upload(uids, auto_accept=auto)
    invalid = [{"deviceUid": e.device_uid, "reason": e.reason} for e in batch.entries if not e.valid]
    return json_response({
        "result": "SUCCESS", "uploadId": batch.upload_id, "uploadStatus": batch.status,
        "totalDeviceCount": len(batch.entries), "validDeviceCount": batch.valid_count,
        "invalidDeviceCount": len(invalid), "invalidReasons": invalid,
    })


async def get_uploads(request: web.Request) -> web.Response:
    """GET /clients/devices/uploads?pageNum&pageSize: one row per uploaded device."""
    sim = request.app[SIM_KEY]
    page_num = int_param(request.query.get("pageNum"), 0, 0, 1_000_000)
    page_size = int_param(request.query.get("pageSize"), 100, 1, 1000)
    if page_num is None or page_size is None:
        _bad_request("pageNum must be >= 0 and pageSize within 1..1000")
    rows = sim.upload_rows()
    data = [{
        "id": d.row_id, "deviceUid": d.device_uid, "imei": d.imei, "imei2": d.imei2,
        "serial": d.serial, "model": d.model, "uploadID": batch.upload_id,
        "uploadStatus": batch.status, "status": d.status,
    } for d, batch in page(rows, page_num, page_size)]
    return json_response({"code": 200, "message": "OK", "data": data})


def device_json(d: Device) -> dict[str, Any]:
    """A device as GET /clients/devices/{deviceUid} shows it."""
    return {
        "objectId": d.object_id, "deviceUid": d.device_uid, "status": d.status,
        "createDate": d.create_date, "modifiedDate": d.modified_date,
        "simControlEnabled": d.sim_control_enabled, "simControlApplied": d.sim_control_enabled,
        "latestRelockApplied": d.relocked, "autoLockTarget": d.auto_lock,
        "agentVersion": d.agent_version, "imei": d.imei, "imei2": d.imei2,
        "licenseExpiryDate": d.license_expiry_date, "firmwareVersion": d.firmware_version,
        "deviceSupportHotp": d.supports_hotp, "offlineLocked": d.offline_locked,
        "offlineLockApplied": d.offline_locked, "simControlLocked": False,
    }


async def get_device(request: web.Request) -> web.Response:
    """GET /clients/devices/{deviceUid}: the device's details, or the documented 404."""
    sim = request.app[SIM_KEY]
    uid = request.match_info["deviceUid"]
    try:
        device = sim.fleet.get(uid)
    except DeviceNotFound:
        _not_found(uid)
    return json_response({"result": "SUCCESS", "device": device_json(device)})


async def _target(request: web.Request, action: str) -> tuple[NeoLockSim, Device, dict[str, Any]]:
    """The sim, the device named by the body's deviceUid (404/400 otherwise) and the body."""
    sim = request.app[SIM_KEY]
    body = await read_object(request)
    uid = body.get("deviceUid") if body is not None else None
    if body is None or not isinstance(uid, str) or not uid:
        _bad_request("deviceUid is required")
    try:
        device = sim.fleet.get(uid)
        sim.fleet.check(device, action)
    except DeviceNotFound:
        _not_found(uid)
    except StateInvalid as err:
        _refuse(400, {"result": "FAIL", "error": {
            "code": 4000310, "message": "DEVICE_STATE_INVALID", "reason": str(err)}})
    return sim, device, body


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


async def approve(request: web.Request) -> web.Response:
    """POST /clients/devices/approve: Pending → Accepted."""
    sim, device, _ = await _target(request, "approve")
    sim.fleet.apply(device, "approve")
    return json_response({"result": "SUCCESS", "objectId": device.object_id,
                          "requestedId": uuid.uuid4().hex, "transactionId": uuid.uuid4().hex,
                          "code": 2000000, "message": "SUCCESS"})


async def lock(request: web.Request) -> web.Response:
    """POST /clients/devices/lock: Enrolled/Blinked → Locking → Locked (Locked: a re-lock)."""
    sim, device, body = await _target(request, "lock")
    device.message, device.tel = _text(body, "message"), _text(body, "tel")
    device.relocked = device.status == "Locked"
    sim.fleet.apply(device, "lock")
    return json_response({"result": "success", "objectId": device.object_id,
                          "requestedId": uuid.uuid4().hex})


async def unlock(request: web.Request) -> web.Response:
    """POST /clients/devices/unlock: Locked/Locking → Unlocking → Enrolled."""
    sim, device, body = await _target(request, "unlock")
    device.message, device.tel = _text(body, "message"), _text(body, "tel")
    device.relocked = False
    sim.fleet.apply(device, "unlock")
    return json_response({"result": "success", "objectId": device.object_id,
                          "requestedId": uuid.uuid4().hex})


async def complete(request: web.Request) -> web.Response:
    """POST /clients/devices/complete: → Completing → Completed."""
    sim, device, _ = await _target(request, "complete")
    sim.fleet.apply(device, "complete")
    return json_response({"result": "SUCCESS", "objectId": device.object_id,
                          "requestedId": uuid.uuid4().hex})


async def delete(request: web.Request) -> web.Response:
    """POST /clients/devices/delete: the device leaves the fleet."""
    sim, device, _ = await _target(request, "delete")
    sim.fleet.apply(device, "delete")
    return json_response({"result": "SUCCESS", "objectId": device.object_id, "requestedId": ""})


async def send_message(request: web.Request) -> web.Response:
    """POST /clients/devices/sendMessage: show a message on the device."""
    sim, device, body = await _target(request, "message")
    message = _text(body, "message")
    if not message:
        _bad_request("message is required")
    device.message = message
    sim.fleet.apply(device, "message")
    return json_response({"result": "SUCCESS", "objectId": device.object_id, "requestedId": ""})


async def offline_pin(request: web.Request) -> web.Response:
    """POST /clients/devices/offlineDeviceLockPin: the PIN answering the device's challenge."""
    sim, device, body = await _target(request, "pin")
    challenge = _text(body, "challenge")
    if not challenge:
        _bad_request("challenge is required")
    digest = hmac.new(f"{sim.seed}:{device.object_id}".encode(), challenge.encode(),
                      hashlib.sha256).digest()
    pin = f"{int.from_bytes(digest[:8], 'big') % 100_000_000:08d}"
    return json_response({"result": "SUCCESS", "objectId": device.object_id, "requestedId": "",
                          "pinNumber": [pin]})


async def create_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions/clients: the client's one push URL (409 if one exists)."""
    sim = request.app[SIM_KEY]
    body = await read_object(request)
    url = body.get("url") if body is not None else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        _bad_request("url must be an absolute http(s) URL")
    if sim.subscription is not None and sim.subscription_conflict:
        _refuse(409, _gateway_error(409, MSG_SUB_EXISTS, "CONFLICT"))
    sim.subscribe(url)
    return json_response({"code": 201, "message": "Subscription created", "data": url}, 201)


async def delete_subscription(request: web.Request) -> web.Response:
    """DELETE /subscriptions/clients: drop the client's subscription (no id needed)."""
    sim = request.app[SIM_KEY]
    if sim.subscription is None:
        _refuse(404, _gateway_error(404, MSG_SUB_MISSING, "NOT_FOUND"))
    sim.subscribe(None)
    return json_response({"code": 200, "message": "Subscription deleted"})


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Push workers and delayed transitions live exactly as long as the app."""
    sim = app[SIM_KEY]
    await sim.push.start()
    try:
        yield
    finally:
        await sim.push.stop()
        sim.fleet.cancel_timers()


def create_app(sim: NeoLockSim) -> web.Application:
    """The NeoLock Application for `sim`, routes under BASE_PATH."""
    limiter = rate_limit_middleware(
        sim.limiter, _rate_key, lambda _r: _gateway_error(429, MSG_TOO_MANY, "TOO_MANY_REQUESTS"))
    app = make_app(sim.seed, middlewares=[limiter, _auth_middleware(sim), refusal_middleware])
    app[SIM_KEY] = sim
    app.cleanup_ctx.append(_background)
    devices = BASE_PATH + "/clients/devices"
    app.router.add_get(BASE_PATH + "/clients/token", get_token)
    app.router.add_post(devices + "/uploads", post_uploads)
    app.router.add_get(devices + "/uploads", get_uploads)
    for name, handler in (("approve", approve), ("lock", lock), ("unlock", unlock),
                          ("complete", complete), ("delete", delete),
                          ("sendMessage", send_message), ("offlineDeviceLockPin", offline_pin)):
        app.router.add_post(f"{devices}/{name}", handler)
    app.router.add_get(devices + "/{deviceUid}", get_device)
    app.router.add_post(BASE_PATH + "/subscriptions/clients", create_subscription)
    app.router.add_delete(BASE_PATH + "/subscriptions/clients", delete_subscription)
    return app

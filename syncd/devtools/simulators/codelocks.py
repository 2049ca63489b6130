"""Codelocks Connect simulator over HTTP: NetCodes under /n/1, Utility (K3Connect) calls under /u/1.

Behaves like the API gateway in front of the vendor: x-api-key checked first (403), then its
throttle when told to (`CodelocksSim.throttle_next`: 429 "Too Many Requests", not metered),
then the monthly usage plan per category (429 "Limit Exceeded"); every call that passes the key
check and the throttle counts, retries and failing calls included. Business errors often come
back as 200 with an error body.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from .codelocks_state import (
    ACCESS_TYPES,
    INIT_MODELS,
    LOCK_MODELS,
    NETCODE,
    PLANS,
    UTILITY,
    AccountError,
    CodelocksSim,
    InvalidData,
    K3Client,
    default_active_periods,
    duration_of,
    netcode_digits,
    parse_active_periods,
)
from .common import COUNTERS_KEY, Handler, make_app, route_key

__all__ = ["BASE_PATH", "NETCODE", "PLANS", "SIM_KEY", "UTILITY", "CodelocksSim", "create_app"]

BASE_PATH = ""
SIM_KEY = web.AppKey("codelocks_sim", CodelocksSim)
_MESSAGE_CHARS = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_,-.() ")


_STATUSES: dict[int, type[web.HTTPException]] = {
    200: web.HTTPOk, 400: web.HTTPBadRequest, 404: web.HTTPNotFound}


def _http(status: int, body: Any) -> web.HTTPException:
    """An answer raised from deep inside a handler (200 for the vendor's errors-in-200 bodies)."""
    return _STATUSES[status](text=json.dumps(body), content_type="application/json")


def _invalid(detail: str) -> NoReturn:
    raise _http(400, {"message": "Invalid data supplied", "detail": detail})


def _require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _http(404, {"message": f"Missing required parameter: {name}"})
    return value


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        _invalid(f"{name} must be an integer")
    if number < minimum:
        _invalid(f"{name} must be at least {minimum}")
    return number


def _model(value: str, allowed: tuple[str, ...]) -> str:
    model = value.upper()
    if model not in allowed:
        _invalid(f"lockmodel must be one of {', '.join(allowed)}")
    return model


def _sim(request: web.Request) -> CodelocksSim:
    return request.app[SIM_KEY]


def _account(request: web.Request, params: Mapping[str, str]) -> str:
    """The access key of the request, if it names a known K3Connect account."""
    key = _require(params, "accesskey")
    if key not in _sim(request).access_keys:
        raise _http(200, {"error": "Unauthorized", "message": "Invalid access key"})
    return key


async def _form(request: web.Request) -> dict[str, str]:
    """Form fields of the body (urlencoded, multipart or JSON), over the query string's."""
    data = dict(request.query)
    if request.content_type.startswith("multipart/"):
        data.update({k: str(v) for k, v in (await request.post()).items()})
    elif request.content_type == "application/json":
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            _invalid("body is not valid JSON")
        if isinstance(body, dict):
            data.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
    else:
        # aiohttp's request.post() ignores DELETE bodies, which this API uses.
        data.update(parse_qsl(await request.text(), keep_blank_values=True))
    return data


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API-gateway behaviour: unknown resource, x-api-key, then the monthly usage plan."""
    sim = _sim(request)
    counters = request.app[COUNTERS_KEY]
    key = route_key(request)
    if request.match_info.http_exception is not None:
        counters[key].requests += 1
        return web.json_response({"message": "Missing Authentication Token"}, status=403)
    if request.headers.get("x-api-key") != sim.api_key:
        counters[key].requests += 1
        return web.json_response({"message": "Forbidden"}, status=403)
    if sim.throttle_next > 0:
        sim.throttle_next -= 1
        counters[key].requests += 1
        counters[key].rate_limited += 1
        return web.json_response({"message": "Too Many Requests"}, status=429)
    category = NETCODE if request.path.startswith("/n/") else UTILITY
    if not sim.consume(category):
        counters[key].requests += 1
        counters[key].rate_limited += 1
        return web.json_response({"message": "Limit Exceeded"}, status=429)
    counters[key].quota_used += 1
    return await handler(request)


# -- NetCode ---------------------------------------------------------------------------------


async def netcode(request: web.Request) -> web.Response:
    """GET /n/1/netcode/{id}: the NetCode for a KitLock (id = timecode) or a K3Connect lock."""
    sim = _sim(request)
    q = request.query
    lock_ref = request.match_info["id"]
    start_raw = _require(q, "start")
    duration_id = _int(_require(q, "duration"), "duration")
    model = _model(_require(q, "lockmodel"), LOCK_MODELS)
    # The doc spells the K3Connect parameter "identifer" once; accept both spellings.
    identifier = q.get("identifier") or q.get("identifer") or _require(q, "identifier")
    try:
        start = datetime.strptime(start_raw, "%Y-%m-%d %H:%M")
        days, hours = duration_of(duration_id)
    except (ValueError, InvalidData):
        _invalid("start must be yyyy-MM-dd hh:mm and duration a known id")
    if model == "K3CONNECT":
        lock = sim.locks.get(lock_ref)
        if lock is None or lock.access_key != identifier:
            return web.json_response({"netcode": "ERROR", "status": "ok"})
    else:
        if not (lock_ref.isdigit() and len(lock_ref) == 12 and identifier.isdigit()):
            _invalid("id must be the YYYYMMddhhmm timecode and identifier numeric")
    if start.minute or (days and start.hour):
        # Hour codes start on the hour, day codes at midnight.
        return web.json_response({"netcode": "ERROR", "status": "ok"})
    code = netcode_digits(lock_ref, start, duration_id, model, identifier)
    expires = start + timedelta(days=days, hours=hours)
    return web.json_response({
        "Startdate": start.strftime("%Y-%m-%d %H:%M"), "DurationHours": hours,
        "DurationDays": days, "Mode": "STANDARD", "SubMode": "DAYS" if days else "HOURS",
        "Timecode": "" if model == "K3CONNECT" else lock_ref, "ActualNetcode": code,
        "Resultstatus": "OK", "LockId": lock_ref if model == "K3CONNECT" else "",
        "Expires": expires.strftime("%Y-%m-%d %H:%M"),
        "Startdata": {
            "datetime": {"date": start.strftime("%Y-%m-%d %H:%M:%S.000000"),
                         "timezone_type": "3", "timezone": "UTC"},
            "original": start_raw, "date_ymd": start.strftime("%Y-%m-%d"),
            "date_dmy": start.strftime("%d-%m-%Y"), "date_mdy": start.strftime("%m-%d-%Y"),
            "time_his": start.strftime("%H:%M:%S"), "time_hi": start.strftime("%H:%M"),
            "time_h": start.strftime("%H"), "timezone": "UTC",
        },
    })


# -- Utility: KitLock ------------------------------------------------------------------------


async def init(request: web.Request) -> web.Response:
    """GET /u/1/init: a KitLock initialisation sequence (always in UTC)."""
    sim = _sim(request)
    q = request.query
    _model(q.get("lockmodel") or "KL1060", INIT_MODELS)
    master = q.get("mastercode") or "11335577"
    if not (master.isdigit() and 4 <= len(master) <= 8):
        _invalid("mastercode must be 4 to 8 digits")
    try:
        ZoneInfo(q.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        _invalid("unknown timezone")
    random_id = (q.get("randomid") or "false").lower()
    if random_id not in {"true", "false"}:
        _invalid("randomid must be true or false")
    rng = random.Random(f"{sim.seed}-{request.query_string}")
    identifier = f"{rng.randrange(100000, 1000000)}" if random_id == "true" else "123456"
    now = sim.now().astimezone(UTC)
    return web.json_response({
        "DefaultMastercode": "11335577",
        "InitSeqFormat": "#MASTERCODE#11#YYMMDDhhmm#IDENTIFIER#",
        "InitSeqFormatDesc": "Master code, programme 11, date and time (UTC), identifier",
        "InitSeq": f"#{master}#11#{now.strftime('%y%m%d%H%M')}#{identifier}#",
        "TimeCode": now.strftime("%Y%m%d%H%M"),
    })


def _duration_json(duration_id: int) -> dict[str, Any]:
    days, hours = duration_of(duration_id)
    return {"DurationID": duration_id, "Mode": "STANDARD", "SubMode": "DAYS" if days else "HOURS",
            "DurationDays": days, "DurationHours": hours, "LockModels": ",".join(LOCK_MODELS)}


async def durations(request: web.Request) -> web.Response:
    """GET /u/1/durations: the duration ids (operation=durations) or the modes (operation=modes)."""
    q = request.query
    if q.get("lockmodel"):
        _model(q["lockmodel"], LOCK_MODELS)
    operation = (q.get("operation") or "durations").lower()
    if operation == "durations":
        return web.json_response([_duration_json(i) for i in range(19)])
    if operation == "modes":
        return web.json_response([{"Mode": "STANDARD", "SubMode": sub,
                                   "LockModels": ",".join(LOCK_MODELS)}
                                  for sub in ("HOURS", "DAYS")])
    _invalid("operation must be durations or modes")


async def duration(request: web.Request) -> web.Response:
    """GET /u/1/duration/{id}: the rules of one duration id for a lock model."""
    duration_id = _int(request.match_info["id"], "id")
    model = _model(request.query.get("lockmodel") or "KL1060", LOCK_MODELS)
    try:
        days, hours = duration_of(duration_id)
    except InvalidData:
        _invalid("unknown duration id")
    return web.json_response({
        "LockModel": model, "DurationID": duration_id,
        "Rules": [{"ApplyDST": 1, "ConvertToUTC": 0,
                   "RestrictedStartTime": "00:00" if days else "hh:00"}],
        "Duration": [{"Days": days, "Hours": hours}],
        "Mode": [{"Name": "STANDARD", "SubMode": "DAYS" if days else "HOURS"}],
    })


# -- Utility: K3Connect ----------------------------------------------------------------------


async def list_locks(request: web.Request) -> web.Response:
    """GET /u/1/k3connect: every lock of the access key's account."""
    key = _account(request, request.query)
    return web.json_response([lock.to_json() for lock in _sim(request).locks_of(key)])


async def get_lock(request: web.Request) -> web.Response:
    """GET /u/1/k3connect/{id}: one lock, 404 "No lock found." if not on the account."""
    key = _account(request, request.query)
    try:
        lock = _sim(request).lock_for(key, request.match_info["id"])
    except AccountError:
        raise _http(404, {"message": "No lock found."}) from None
    return web.json_response(lock.to_json(detail=True))


async def account(request: web.Request) -> web.Response:
    """GET /u/1/k3connect/account: the account's email and SPCCM status."""
    key = _account(request, request.query)
    return web.json_response([{"email": _sim(request).account_emails[key],
                               "spccmstatus": "ACTIVE"}])


async def help_spcconfig(request: web.Request) -> web.Response:
    """GET /u/1/k3connect/help/spcconfig: a sample active-periods JSON string."""
    return web.json_response({"activeperiods": json.dumps(default_active_periods())})


def _lock_of(request: web.Request, params: Mapping[str, str]) -> str:
    key = _account(request, params)
    try:
        return _sim(request).lock_for(key, request.match_info["id"]).lock_id
    except AccountError:
        raise _http(200, {"error": "NotFound", "message": "No lock found."}) from None


async def list_clients(request: web.Request) -> web.Response:
    """GET /u/1/k3connect/{id}/clients: a page of the lock's smartphone clients and their count."""
    q = request.query
    lock_id = _lock_of(request, q)
    page = _int(_require(q, "page"), "page", 1)
    perpage = _int(_require(q, "perpage"), "perpage", 1)
    clients = list(_sim(request).clients[lock_id].values())
    chunk = clients[(page - 1) * perpage: page * perpage]
    return web.json_response({"count": len(clients), "clients": [c.to_json() for c in chunk]})


async def audit(request: web.Request) -> web.Response:
    """GET /u/1/k3connect/{id}/audit: a page of the lock's audit trail."""
    q = request.query
    lock_id = _lock_of(request, q)
    page = _int(_require(q, "page"), "page", 1)
    perpage = _int(_require(q, "perpage"), "perpage", 1)
    order = _require(q, "pageorder").lower()
    order = {"asc": "ascending", "desc": "descending"}.get(order, order)
    if order not in {"ascending", "descending"}:
        _invalid("pageorder must be ascending or descending")
    entries = _sim(request).audit_page(lock_id, page, perpage, order)
    return web.json_response([e.to_json() for e in entries])


def _client_error(message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message})


async def add_client(request: web.Request) -> web.Response:
    """POST /u/1/k3connect/{id}/client: invite a registered K3 user as a client of the lock."""
    sim = _sim(request)
    form = await _form(request)
    lock_id = _lock_of(request, form)
    email = _require(form, "clientemail")
    periods = _periods(_require(form, "activeperiods"))
    access_type = _require(form, "accesstype").upper()
    message = _require(form, "message")
    if access_type not in ACCESS_TYPES:
        _invalid("accesstype must be STANDARD or ONE_TIME")
    if len(message) > 500 or not set(message.upper()) <= _MESSAGE_CHARS:
        _invalid("message: at most 500 characters of 0-9 A-Z _,-.()")
    if email not in sim.registered_emails:
        return web.json_response({"error": "ClientNotRegistered",
                                  "message": "Email is not a registered K3 Connect account"})
    if email in sim.clients[lock_id]:
        return _client_error("Client already exists on this lock")
    sim.clients[lock_id][email] = K3Client(
        email=email, lock_id=lock_id, status="ACTIVE" if sim.auto_accept_invites else "PENDING",
        access_type=access_type, active_periods=periods)
    return web.json_response({"result": "success"})


def _periods(raw: str) -> dict[str, Any]:
    try:
        return parse_active_periods(raw)
    except InvalidData as err:
        _invalid(str(err))


async def _existing_client(request: web.Request) -> tuple[dict[str, str], str, str]:
    form = await _form(request)
    lock_id = _lock_of(request, form)
    return form, lock_id, _require(form, "clientemail")


async def update_client(request: web.Request) -> web.Response:
    """PUT /u/1/k3connect/{id}/client: replace a client's active periods."""
    form, lock_id, email = await _existing_client(request)
    periods = _periods(_require(form, "activeperiods"))
    client = _sim(request).clients[lock_id].get(email)
    if client is None:
        return _client_error("Client not found")
    client.active_periods = periods
    return web.json_response({"result": "success", "lockid": lock_id, "email": email})


async def suspend_restore_client(request: web.Request) -> web.Response:
    """PATCH /u/1/k3connect/{id}/client: SUSPEND or RESTORE a client."""
    form, lock_id, email = await _existing_client(request)
    action = _require(form, "action").upper()
    if action not in {"SUSPEND", "RESTORE"}:
        _invalid("action must be SUSPEND or RESTORE")
    client = _sim(request).clients[lock_id].get(email)
    if client is None:
        return _client_error("Client not found")
    client.status = "SUSPENDED" if action == "SUSPEND" else "ACTIVE"
    return web.json_response({"result": "success", "lockid": lock_id, "email": email})


async def delete_client(request: web.Request) -> web.Response:
    """DELETE /u/1/k3connect/{id}/client: remove a client from the lock."""
    _form_data, lock_id, email = await _existing_client(request)
    if _sim(request).clients[lock_id].pop(email, None) is None:
        return _client_error("Client not found")
    return web.json_response({"result": "success", "lockid": lock_id, "email": email})


def create_app(sim: CodelocksSim) -> web.Application:
    """The Codelocks Connect simulator Application for `sim`."""
    app = make_app(sim.seed)
    app[SIM_KEY] = sim
    # Outermost, so that calls failed by injected faults still count against the quota.
    app.middlewares.insert(0, gateway_middleware)
    r = app.router
    r.add_get("/n/1/netcode/{id}", netcode)
    r.add_get("/u/1/init", init)
    r.add_get("/u/1/durations", durations)
    r.add_get("/u/1/duration/{id}", duration)
    r.add_get("/u/1/k3connect", list_locks)
    # Fixed paths before /k3connect/{id}: the router tries resources in order.
    r.add_get("/u/1/k3connect/account", account)
    r.add_get("/u/1/k3connect/help/spcconfig", help_spcconfig)
    r.add_get("/u/1/k3connect/{id}", get_lock)
    r.add_get("/u/1/k3connect/{id}/clients", list_clients)
    r.add_get("/u/1/k3connect/{id}/audit", audit)
    r.add_post("/u/1/k3connect/{id}/client", add_client)
    r.add_put("/u/1/k3connect/{id}/client", update_client)
    r.add_patch("/u/1/k3connect/{id}/client", suspend_restore_client)
    r.add_delete("/u/1/k3connect/{id}/client", delete_client)
    return app

"""ZKTeco BioTime simulator over HTTP: tokens, /iclock/api/terminals/ and /iclock/api/transactions/.

Like a self-hosted BioTime server: Django-style trailing slashes, DRF-style auth errors, list
envelopes `{count, next, previous, msg, code, data}` whose links carry the server's internal host,
`code` other than 0 for errors, and an HTML page with status 200 for any unknown path.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL

from .biotime_state import ACTIONS, BioTimeSim, Terminal, TokenError, Transaction
from .common import Handler, make_app

__all__ = ["BASE_PATH", "SIM_KEY", "BioTimeSim", "create_app"]

BASE_PATH = ""
SIM_KEY = web.AppKey("biotime_sim", BioTimeSim)
DEFAULT_PAGE_SIZE = 10
HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>BioTime</title></head>
<body><div id="app">ZKBioTime 8.0 — please sign in</div>
<form method="post" action="/login/"><input name="username"><input name="password" type="password">
</form></body></html>
"""


def _sim(request: web.Request) -> BioTimeSim:
    return request.app[SIM_KEY]


def _fail(status: int, msg: str, data: Any = None) -> NoReturn:
    """Raise a BioTime error body (`code` other than 0) with HTTP status `status`."""
    cls = {200: web.HTTPOk, 400: web.HTTPBadRequest, 404: web.HTTPNotFound}[status]
    raise cls(text=json.dumps({"code": 1, "msg": msg, "data": data}),
              content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body (or form fields) as a dict; 400 with a BioTime error if malformed."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    text = await request.text()
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError:
        _fail(400, "JSON parse error")
    if not isinstance(body, dict):
        _fail(400, "Invalid data. Expected a dictionary.")
    return body


# -- auth --------------------------------------------------------------------------------------


def _unauthorized(detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=401,
                             headers={"WWW-Authenticate": 'JWT realm="api"'})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JWT/Token authentication, then the licence gate, on every /iclock/api/ view."""
    if not request.path.startswith("/iclock/api/") or request.match_info.handler is unknown_path:
        return await handler(request)
    sim = _sim(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme == "JWT" and token:
        try:
            sim.verify_jwt(token)
        except TokenError as err:
            return _unauthorized(str(err))
    elif scheme == "Token" and token:
        if not hmac.compare_digest(token, sim.api_token):
            return _unauthorized("Invalid token.")
    else:
        return _unauthorized("Authentication credentials were not provided.")
    if not sim.licensed:
        return web.json_response({"code": 403, "msg": "License is invalid or expired, "
                                  "please activate BioTime.", "data": None,
                                  "detail": "You do not have permission to perform this action."},
                                 status=403)
    return await handler(request)


async def _credentials(request: web.Request) -> None:
    body = await _body(request)
    missing = {f: ["This field is required."] for f in ("username", "password") if not body.get(f)}
    if missing:
        raise web.HTTPBadRequest(text=json.dumps(missing), content_type="application/json")
    sim = _sim(request)
    if not (hmac.compare_digest(str(body["username"]), sim.username)
            and hmac.compare_digest(str(body["password"]), sim.password)):
        raise web.HTTPBadRequest(
            text=json.dumps({"non_field_errors": ["Unable to log in with provided credentials."]}),
            content_type="application/json")


async def jwt_token(request: web.Request) -> web.Response:
    """POST /jwt-api-token-auth/: a JWT that expires after the sim's token lifetime."""
    await _credentials(request)
    return web.json_response({"token": _sim(request).issue_jwt()})


async def api_token(request: web.Request) -> web.Response:
    """POST /api-token-auth/: the user's non-expiring DRF token."""
    await _credentials(request)
    return web.json_response({"token": _sim(request).api_token})


# -- paging ------------------------------------------------------------------------------------


def _int_param(value: str | None, default: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default


def _link(request: web.Request, **changes: int | None) -> str:
    """A link to this view with some query parameters changed, on the server's internal host."""
    query = [(k, v) for k, v in request.query.items() if k not in changes]
    query += [(k, str(v)) for k, v in changes.items() if v is not None]
    return str(URL(f"http://{_sim(request).internal_host}{request.path}").with_query(query))


def _paged(request: web.Request, items: list[Any],
           render: Callable[[Any], dict[str, Any]]) -> web.Response:
    """The list envelope of one page of `items`: page/page_size, page/limit or limit/offset."""
    sim = _sim(request)
    q = request.query
    size_param = "limit" if sim.legacy_paging else ("page_size" if "page_size" in q else "limit")
    size = _int_param(q.get(size_param), DEFAULT_PAGE_SIZE)
    total = len(items)
    if "offset" in q and "page" not in q:
        offset = _int_param(q.get("offset"), 0)
        chunk = items[offset: offset + size]
        next_link = _link(request, offset=offset + size) if offset + size < total else None
        prev_link = (_link(request, offset=max(offset - size, 0) or None)
                     if offset > 0 else None)
    else:
        page = _int_param(q.get("page"), 0) if "page" in q else 1
        last = max((total + size - 1) // size, 1)
        if not 1 <= page <= last:
            return web.json_response({"count": total, "next": None, "previous": None,
                                      "msg": "Invalid page.", "code": 1, "data": []})
        chunk = items[(page - 1) * size: page * size]
        next_link = _link(request, page=page + 1) if page < last else None
        # As Django REST framework does, the link to page 1 carries no `page` parameter.
        prev_link = _link(request, page=page - 1 if page > 2 else None) if page > 1 else None
    return web.json_response({"count": total, "next": next_link, "previous": prev_link,
                              "msg": "", "code": 0, "data": [render(i) for i in chunk]})


def _filter_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        _fail(400, f"{name}: Enter a number.", {name: ["Enter a number."]})


# -- terminals ---------------------------------------------------------------------------------


async def list_terminals(request: web.Request) -> web.Response:
    """GET /iclock/api/terminals/: paged, filtered by sn, alias, state, area, *_icontains."""
    sim = _sim(request)
    q = request.query
    state, area = _filter_int(request, "state"), _filter_int(request, "area")
    found = [
        t for t in sorted(sim.terminals.values(), key=lambda t: t.id)
        if (not q.get("sn") or t.sn == q["sn"]) and (not q.get("alias") or t.alias == q["alias"])
        and (state is None or (1 if t.online else 2) == state)
        and (area is None or t.area_id == area)
        and q.get("sn_icontains", "").lower() in t.sn.lower()
        and q.get("alias_icontains", "").lower() in t.alias.lower()
    ]
    return _paged(request, found, sim.terminal_json)


def _get_terminal(request: web.Request) -> Terminal:
    terminal = _sim(request).terminals.get(int(request.match_info["id"]))
    if terminal is None:
        raise web.HTTPNotFound(text=json.dumps({"detail": "Not found."}),
                               content_type="application/json")
    return terminal


def _validated(sim: BioTimeSim, body: dict[str, Any], *, partial: bool,
               current: Terminal | None = None) -> dict[str, Any]:
    """Terminal fields from a create/update body; 400 with field errors if invalid."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for name in ("sn", "alias", "ip_address"):
        if name in body and str(body[name]).strip():
            fields[name] = str(body[name]).strip()
        elif not partial or name in body:
            errors[name] = ["This field is required."]
    for name in ("terminal_tz", "heartbeat", "area"):
        if body.get(name) is not None:
            try:
                fields[name] = int(body[name])
            except (TypeError, ValueError):
                errors[name] = ["A valid integer is required."]
    if "area" in fields and fields["area"] not in sim.areas:
        errors["area"] = [f'Invalid pk "{fields["area"]}" - object does not exist.']
    other = sim.terminal_by_sn(fields.get("sn", ""))
    if other is not None and other is not current:
        errors["sn"] = ["terminal with this sn already exists."]
    if errors:
        first = next(iter(errors))
        _fail(400, f"{first}: {errors[first][0]}", errors)
    return fields


async def create_terminal(request: web.Request) -> web.Response:
    """POST /iclock/api/terminals/: register a terminal (sn, alias, ip_address required)."""
    sim = _sim(request)
    fields = _validated(sim, await _body(request), partial=False)
    terminal = sim.add_terminal(sn=fields["sn"], alias=fields["alias"],
                                ip_address=fields["ip_address"], area_id=fields.get("area", 1),
                                terminal_tz=fields.get("terminal_tz", 8),
                                heartbeat=fields.get("heartbeat", 10))
    return web.json_response(sim.terminal_json(terminal), status=201)


async def read_terminal(request: web.Request) -> web.Response:
    """GET /iclock/api/terminals/{id}/: one terminal, 404 if unknown."""
    return web.json_response(_sim(request).terminal_json(_get_terminal(request)))


async def update_terminal(request: web.Request) -> web.Response:
    """PUT (full) or PATCH (partial) /iclock/api/terminals/{id}/."""
    sim = _sim(request)
    terminal = _get_terminal(request)
    fields = _validated(sim, await _body(request), partial=request.method == "PATCH",
                        current=terminal)
    for name, attr in (("sn", "sn"), ("alias", "alias"), ("ip_address", "ip_address"),
                       ("terminal_tz", "terminal_tz"), ("heartbeat", "heartbeat"),
                       ("area", "area_id")):
        if name in fields:
            setattr(terminal, attr, fields[name])
    return web.json_response(sim.terminal_json(terminal))


async def delete_terminal(request: web.Request) -> web.Response:
    """DELETE /iclock/api/terminals/{id}/: remove the terminal (204, no body)."""
    terminal = _get_terminal(request)
    del _sim(request).terminals[terminal.id]
    return web.Response(status=204)


def _action(name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        sim = _sim(request)
        ids = (await _body(request)).get("terminals")
        if not isinstance(ids, list) or not ids:
            _fail(400, "terminals: This field is required.",
                  {"terminals": ["This field is required."]})
        try:
            wanted = [int(i) for i in ids]
        except (TypeError, ValueError):
            _fail(400, "terminals: A valid integer is required.")
        unknown = [i for i in wanted if i not in sim.terminals]
        if unknown:
            # The server accepts the call but refuses it in the body.
            _fail(200, f"Terminal(s) {unknown} do not exist.")
        for terminal_id in wanted:
            sim.record_command(name, sim.terminals[terminal_id])
        return web.json_response({"code": 0, "msg": "", "data": None})

    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = f"POST /iclock/api/terminals/{name}/: queue `{name}` for each terminal."
    return handler


# -- transactions ------------------------------------------------------------------------------


def _time_filter(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return _sim(request).parse_local(value)
    except ValueError:
        _fail(400, f"{name}: Enter a valid date/time.", {name: ["Enter a valid date/time."]})


async def list_transactions(request: web.Request) -> web.Response:
    """GET /iclock/api/transactions/: punches, paged, filtered by id, terminal, employee and time."""
    sim = _sim(request)
    q = request.query
    exact, above, from_id = (_filter_int(request, n) for n in ("id", "id__gt", "id__gte"))
    start, end = _time_filter(request, "start_time"), _time_filter(request, "end_time")
    found = [
        t for t in sim.transactions
        if (exact is None or t.id == exact) and (above is None or t.id > above)
        and (from_id is None or t.id >= from_id)
        and (not q.get("terminal_sn") or t.terminal_sn == q["terminal_sn"])
        and (not q.get("emp_code") or t.emp_code == q["emp_code"])
        and (start is None or t.punch_time >= start) and (end is None or t.punch_time <= end)
    ]
    ordering = q.get("ordering", "id")
    keys: dict[str, Callable[[Transaction], Any]] = {
        "id": lambda t: t.id, "punch_time": lambda t: (t.punch_time, t.id),
        "upload_time": lambda t: (t.upload_time, t.id)}
    found.sort(key=keys.get(ordering.lstrip("-"), keys["id"]), reverse=ordering.startswith("-"))
    return _paged(request, found, sim.transaction_json)


# -- everything else ---------------------------------------------------------------------------


async def unknown_path(request: web.Request) -> web.StreamResponse:
    """Any other path: Django's slash redirect for GET, else the web UI's HTML page with 200."""
    if request.method in ("GET", "HEAD") and not request.path.endswith("/"):
        target = request.rel_url.with_path(request.path + "/").with_query(request.rel_url.query)
        slashed = request.clone(rel_url=target)
        match = await request.app.router.resolve(slashed)
        if match.http_exception is None and match.handler is not unknown_path:
            raise web.HTTPMovedPermanently(str(slashed.rel_url))
    return web.Response(text=HTML_PAGE, content_type="text/html")


def create_app(sim: BioTimeSim) -> web.Application:
    """The BioTime simulator Application for `sim`."""
    app = make_app(sim.seed, middlewares=[auth_middleware])
    app[SIM_KEY] = sim
    r = app.router
    r.add_post("/jwt-api-token-auth/", jwt_token)
    r.add_post("/api-token-auth/", api_token)
    r.add_get("/iclock/api/terminals/", list_terminals)
    r.add_post("/iclock/api/terminals/", create_terminal)
    for action in ACTIONS:
        r.add_post(f"/iclock/api/terminals/{action}/", _action(action))
    r.add_get(r"/iclock/api/terminals/{id:\d+}/", read_terminal)
    r.add_put(r"/iclock/api/terminals/{id:\d+}/", update_terminal)
    r.add_patch(r"/iclock/api/terminals/{id:\d+}/", update_terminal)
    r.add_delete(r"/iclock/api/terminals/{id:\d+}/", delete_terminal)
    r.add_get("/iclock/api/transactions/", list_transactions)
    r.add_route("*", "/{tail:.*}", unknown_path)
    return app

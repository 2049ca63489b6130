"""Control routes of `syncd simulate` for drills run from another process.

A drill starts the simulators as their own process (as production talks to vendors over the
network) and steers them here: which vendor section to configure, faults per vendor and route
(latency, 5xx, 429 storms), the Codelocks quota used up at the vendor, NeoLock event bodies to
push to every replica at once, and what each simulator counted. Like every simulator module it
imports nothing of syncd's clients or models.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .codelocks_state import NETCODE, UTILITY
from .common import FaultSpec, Running
from .kg_core import StateChange, now_ms
from .neolock_push import PushEvent

if TYPE_CHECKING:
    from .runner import Simulators

SECTIONS = web.AppKey("vendor_sections", dict)
_FAULT_FIELDS = {f.name for f in dataclasses.fields(FaultSpec)}
MAX_EVENTS = 10_000


def _sims(request: web.Request) -> Simulators:
    from .runner import SIMS  # the runner imports this module: import its key late

    return request.app[SIMS]


def _running(request: web.Request) -> Running:
    sims = _sims(request)
    vendor = request.match_info["vendor"]
    running: dict[str, Running] = {
        "neolock": sims.neolock.running, "knoxguard": sims.knoxguard.running,
        "codelocks": sims.codelocks.running, "biotime": sims.biotime.running}
    if vendor not in running:
        raise web.HTTPNotFound(text=f"unknown vendor {vendor!r}")
    return running[vendor]


async def _vendors(request: web.Request) -> web.Response:
    """`GET /vendors`: syncd's config sections for the four simulators (base URLs, credentials)."""
    return web.json_response(request.app[SECTIONS])


async def _set_fault(request: web.Request) -> web.Response:
    """`PUT /faults/{vendor}`: inject a FaultSpec (JSON fields) on `route` ("*": every route)."""
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    route = str(body.pop("route", "*"))
    unknown = set(body) - _FAULT_FIELDS
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown fault field(s) {sorted(unknown)}")
    spec = FaultSpec(**body)
    _running(request).faults.set(route, spec)
    return web.json_response({"route": route, **dataclasses.asdict(spec)})


async def _clear_faults(request: web.Request) -> web.Response:
    """`DELETE /faults/{vendor}`: stop injecting faults on every route of the vendor."""
    _running(request).faults.clear()
    return web.json_response({"cleared": request.match_info["vendor"]})


async def _counters(request: web.Request) -> web.Response:
    """`GET /counters/{vendor}`: what each route of the vendor has seen."""
    routes = _running(request).counters.routes
    return web.json_response({route: dataclasses.asdict(c) for route, c in routes.items()})


async def _events(request: web.Request) -> web.Response:
    """`POST /neolock/events?count=N`: N NeoLock push bodies (current device states, fresh ids),
    returned rather than delivered, so a drill can post each to every replica at once."""
    sim = _sims(request).neolock.sim
    try:
        count = min(max(int(request.query.get("count", "1")), 1), MAX_EVENTS)
    except ValueError:
        raise web.HTTPBadRequest(text="count must be an integer") from None
    uids = sorted(sim.devices)
    bodies: list[Any] = []
    for i in range(count):
        device = dataclasses.replace(sim.devices[uids[i % len(uids)]])
        change = StateChange(device, device.status, device.status, now_ms())
        event = PushEvent(str(uuid.uuid4()), change.event, change)
        bodies.append(sim.event_body(event))
    return web.json_response(bodies)


async def _deliveries(request: web.Request) -> web.Response:
    """`GET /neolock/deliveries`: the simulator's own pushes to the subscriber and their states."""
    log = _sims(request).neolock.sim.deliveries
    return web.json_response([{"id": d.id, "state": d.state, "url": d.url,
                               "statuses": [a.status for a in d.attempts]} for d in log])


def _category(request: web.Request) -> str:
    category = request.match_info["category"]
    if category not in (NETCODE, UTILITY):
        raise web.HTTPNotFound(text=f"unknown quota category {category!r}")
    return category


def _quota_state(request: web.Request, category: str) -> dict[str, Any]:
    served = _sims(request).codelocks
    prefix = "/n/" if category == NETCODE else "/u/"
    billed = sum(c.quota_used for route, c in served.running.counters.routes.items()
                 if route.startswith(prefix))
    refused = sum(c.rate_limited for route, c in served.running.counters.routes.items()
                  if route.startswith(prefix))
    sim = served.sim
    return {"category": category, "period": sim.period(), "limit": sim.quota_limit(category),
            "used": sim.quota_used(category), "refused": sim.quota_refused(category),
            "billed_requests": billed, "refused_requests": refused}


async def _quota(request: web.Request) -> web.Response:
    """`GET /codelocks/quota/{category}`: the vendor's count (used, refused) and the calls it
    billed to requests (`billed_requests`) or refused with 429 (`refused_requests`)."""
    return web.json_response(_quota_state(request, _category(request)))


async def _exhaust(request: web.Request) -> web.Response:
    """`POST /codelocks/quota/{category}/exhaust`: the month's quota used up at the vendor."""
    category = _category(request)
    sim = _sims(request).codelocks.sim
    sim.set_quota_used(category, sim.quota_limit(category))
    return web.json_response(_quota_state(request, category))


def add_routes(app: web.Application, sections: dict[str, dict[str, str | list[str]]]) -> None:
    """Add the drill controls to a control app (which holds the simulators under runner.SIMS)."""
    app[SECTIONS] = sections
    app.router.add_get("/vendors", _vendors)
    app.router.add_put("/faults/{vendor}", _set_fault)
    app.router.add_delete("/faults/{vendor}", _clear_faults)
    app.router.add_get("/counters/{vendor}", _counters)
    app.router.add_post("/neolock/events", _events)
    app.router.add_get("/neolock/deliveries", _deliveries)
    app.router.add_get("/codelocks/quota/{category}", _quota)
    app.router.add_post("/codelocks/quota/{category}/exhaust", _exhaust)

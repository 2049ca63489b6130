"""The console's overview, alerts, Codelocks quota and fleet pages (the drift pages: cases.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

from aiohttp import web

from syncd.db import console as queries
from syncd.jobs.status import collect_status
from syncd.sync.codelocks.jobs import JOBS as K3_JOBS
from syncd.sync.codelocks.jobs import K3Context
from syncd.sync.codelocks.quota import UTILITY, VENDOR
from syncd.sync.codelocks.status import quota_status
from syncd.web import keys, openapi
from syncd.web.console import charts
from syncd.web.console.render import documented, page
from syncd.web.health import app_readiness

routes = web.RouteTableDef()
CHART_RUNS = 50  # runs per job in the duration chart
DELIVERY_STATES = ("pending", "delivered", "dead", "acknowledged", "stopped")
TERMINAL_STATES = (("online", "ok"), ("offline", "warn"), ("missing", "bad"), ("unknown", "info"))
DEVICE_DAYS = 30


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@routes.get("/ui", name="console.root")
@openapi.documented("Console: redirect to /ui/ (admin listener)", {302: "to /ui/"},
                    tags=["console"], content_type="text/plain")
async def root(request: web.Request) -> web.Response:
    """Send /ui to /ui/."""
    raise web.HTTPFound(request.app.router["console.overview"].url_for())


@routes.get("/ui/", name="console.overview")
@documented("overview: health, readiness, jobs with their duration charts, inbox, subscription")
async def overview(request: web.Request) -> web.Response:
    """Health and readiness, each job with its duration chart, inbox backlog, subscription."""
    app = request.app
    db = app[keys.DB]
    now = _now()
    status = await collect_status(db, app[keys.SCHEDULER].schedule, now=now,
                                  neolock_configured=app[keys.SETTINGS].neolock is not None,
                                  policy=app[keys.SETTINGS].status)
    checks = await app_readiness(app)
    durations = await queries.job_durations(db, CHART_RUNS)
    jobs = []
    for job in status["jobs"]:
        runs = durations.get(job["job"], [])
        jobs.append({**job, "runs": len(runs),
                     "chart": charts.duration_chart(job["job"], runs) if runs else None})
    return page(request, "overview.html", {
        "now": now, "status": status, "checks": checks, "jobs": jobs, "chart_runs": CHART_RUNS,
        "ready": all(v == "ok" for v in checks.values()),
        "neolock": app[keys.SETTINGS].neolock is not None}, current="console.overview")


@routes.get("/ui/alerts", name="console.alerts")
@documented("alert deliveries per hook and the latest ones", query=("status",))
async def alerts(request: web.Request) -> web.Response:
    """Deliveries per hook (pending, delivered, dead) with the last error; the latest ones."""
    app = request.app
    db = app[keys.DB]
    wanted = request.query.get("status") or None
    shown = wanted if wanted in DELIVERY_STATES else None
    counted = {h.hook: h for h in await queries.alert_hooks(db)}
    configured = [h.hook_name for h in app[keys.SETTINGS].alerts.hooks]
    hooks = [counted.get(name) or queries.HookDeliveries(name) for name in configured]
    hooks += [h for name, h in counted.items() if name not in configured]
    recent = await queries.recent_deliveries(db, shown)
    return page(request, "alerts.html", {
        "now": _now(), "hooks": hooks, "configured": set(configured), "recent": recent,
        "states": DELIVERY_STATES, "shown": shown}, current="console.alerts")


@routes.get("/ui/quota", name="console.quota")
@documented("the Codelocks quota: burn chart, projections, K3 jobs' next runs")
async def quota(request: web.Request) -> web.Response:
    """The Codelocks quota: burn chart against the budget, projections, each K3 job's next run."""
    app = request.app
    settings = app[keys.SETTINGS].codelocks
    now = _now()
    if settings is None:
        return page(request, "quota.html", {"now": now, "quota": None}, current="console.quota")
    k3 = K3Context(app[keys.DB], settings, app[keys.HTTP])
    disabled = [n for n, every in app[keys.SCHEDULER].schedule.items() if every is None]
    status = await quota_status(k3, now, disabled=disabled)
    start, end = k3.quota.period_bounds(now)
    runs = await queries.k3_runs(k3.db, start, K3_JOBS)
    by_job = await queries.usage_by_job(k3.db, VENDOR, k3.quota.period_of(now))
    utility = status["categories"][UTILITY]
    used = list(zip((r.finished_at for r in runs),
                    itertools.accumulate(r.requests for r in runs), strict=True))
    burn = charts.Burn(
        category=UTILITY, start=start, end=end, now=now, quota=utility["quota"],
        reserve=utility["reserve"], calls_now=utility["calls"], used=used,
        projected_at_pace=utility["projected_at_pace"],
        projected_as_planned=utility["projected_as_planned"])
    return page(request, "quota.html", {
        "now": now, "quota": status, "chart": charts.burn_chart(burn), "runs": len(runs),
        "calls_by_job": {job: sum(c for j, _, c in by_job if j == job) for job in K3_JOBS},
        "period_start": start}, current="console.quota")


@dataclasses.dataclass(frozen=True)
class _Provider:
    name: str
    states: list[queries.PhoneState]

    @property
    def phones(self) -> int:
        return sum(s.phones for s in self.states)

    @property
    def in_drift(self) -> int:
        return sum(s.in_drift for s in self.states)


@routes.get("/ui/fleet", name="console.fleet")
@documented("phones, terminals and app devices")
async def fleet(request: web.Request) -> web.Response:
    """Phones by state per provider, terminals by state, app devices registered per day."""
    db = request.app[keys.DB]
    phones = await queries.phone_states(db)
    providers = [_Provider(name, list(states))
                 for name, states in itertools.groupby(phones, key=lambda s: s.provider)]
    phone_charts = {p.name: charts.hbar_chart(
        f"{p.name} phones by vendor state", [(s.vendor_state or "unknown", s.phones, "phone")
                                              for s in p.states], unit="phones")
        for p in providers}
    terminals = await queries.terminal_states(db)
    terminal_bars = [(state, terminals.get(state, 0), css) for state, css in TERMINAL_STATES]
    per_day = await queries.app_devices_per_day(db, DEVICE_DAYS)
    devices, banned = await queries.app_devices_total(db)
    context: dict[str, Any] = {
        "now": _now(), "providers": providers, "phone_charts": phone_charts,
        "terminals": terminal_bars,
        "terminal_chart": charts.hbar_chart("attendance terminals by state", terminal_bars,
                                            unit="terminals"),
        "devices": devices, "banned": banned, "device_days": DEVICE_DAYS,
        "registered": sum(n for _, n in per_day),
        "device_chart": charts.bar_chart(
            f"app devices registered per day, last {DEVICE_DAYS} days (UTC)",
            [(day.strftime("%m-%d"), n) for day, n in per_day], y_title="devices / day",
            x_title="day (UTC)", every=5)}
    return page(request, "fleet.html", context, current="console.fleet")

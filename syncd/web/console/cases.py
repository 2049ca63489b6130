"""The console's drift pages: cases filtered by status, kind and severity; one case's page."""

from __future__ import annotations

import dataclasses
import datetime as dt

from aiohttp import web

from syncd.db import console as queries
from syncd.db import drift
from syncd.web import keys
from syncd.web.console.render import documented, page

routes = web.RouteTableDef()
STATUSES = ("open", "suppressed", "resolved")
SEVERITIES = ("critical", "warning", "info")
MAX_ROWS = 500


@dataclasses.dataclass(frozen=True)
class Filter:
    """What the drift page shows: a status ('all', else one), a kind and a severity ('' = any)."""

    status: str = "open"
    kind: str = ""
    severity: str = ""

    @classmethod
    def from_query(cls, query: dict[str, str], kinds: set[str]) -> Filter:
        """The filter a query string asks for; an unknown kind or severity means any (the
        status: open)."""
        status = query.get("status", "open")
        severity = query.get("severity", "")
        kind = query.get("kind", "")
        return cls(status if status in (*STATUSES, "all") else "open",
                   kind if kind in kinds else "",
                   severity if severity in SEVERITIES else "")

    def with_status(self, status: str) -> dict[str, str]:
        """This filter's query string with another status (the tabs' links)."""
        return {k: v for k, v in (("status", status), ("kind", self.kind),
                                  ("severity", self.severity)) if v}


@routes.get("/ui/drift", name="console.drift")
@documented("drift cases by status, kind and severity", query=("status", "kind", "severity"))
async def cases(request: web.Request) -> web.Response:
    """Drift cases, filtered by the query string (a plain GET form: no script needed)."""
    db = request.app[keys.DB]
    facets = await queries.drift_facets(db)
    kinds = sorted({f.kind for f in facets})
    chosen = Filter.from_query(dict(request.query), set(kinds))
    rows = await queries.drift_cases(
        db, status=None if chosen.status == "all" else chosen.status, kind=chosen.kind or None,
        severity=chosen.severity or None, limit=MAX_ROWS)
    matching = [f for f in facets if (not chosen.kind or f.kind == chosen.kind)
                and (not chosen.severity or f.severity == chosen.severity)]
    counts = {status: sum(f.cases for f in matching if f.status == status) for status in STATUSES}
    counts["all"] = sum(counts.values())
    return page(request, "drift.html", {
        "now": dt.datetime.now(dt.UTC), "rows": rows, "filter": chosen, "kinds": kinds,
        "statuses": STATUSES, "severities": SEVERITIES, "counts": counts,
        "limited": len(rows) == MAX_ROWS}, current="console.drift")


@routes.get(r"/ui/drift/{case_id:\d{1,18}}", name="console.case")
@documented("one drift case: history, alerts, actions", path="case_id", missing=True)
async def case(request: web.Request) -> web.Response:
    """One case: what differs, the plan, its history, its alerts and the actions on its subject."""
    db = request.app[keys.DB]
    now = dt.datetime.now(dt.UTC)
    case_id = int(request.match_info["case_id"])
    found = await drift.get_case(db, case_id)
    if found is None:
        return page(request, "missing.html", {"now": now, "what": f"drift case {case_id}"},
                    current="console.drift", status=404)
    return page(request, "case.html", {
        "now": now, "case": found,
        "history": await queries.case_history(db, case_id),
        "alerts": await queries.case_alerts(db, case_id),
        "actions": await queries.case_actions(db, found.subject, found.first_seen_at,
                                              found.resolved_at)}, current="console.drift")

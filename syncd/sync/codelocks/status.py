"""What `syncd status` and `syncd quota` show of the Codelocks quota: use, projection, next runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from syncd.db import codelocks as queries
from syncd.db.codelocks import Usage
from syncd.sync.codelocks.jobs import JOBS, K3Context
from syncd.sync.codelocks.quota import CATEGORIES, VENDOR, QuotaLedger


async def period_use(ledger: QuotaLedger, now: dt.datetime) -> dict[str, tuple[Usage, int]]:
    """Each category's ledger this period, with the calls it would end with at its pace so far."""
    start, end = ledger.config.period_bounds(now)
    elapsed = max((now - start).total_seconds(), 1.0)
    length = (end - start).total_seconds()
    found = {}
    for category in CATEGORIES:
        usage = await ledger.usage(category, now)
        found[category] = (usage, round(usage.calls * length / elapsed))
    return found


async def quota_status(k3: K3Context, now: dt.datetime | None = None, *,
                       disabled: Collection[str] = ()) -> dict[str, Any]:
    """Use per category this period, the projection to its end, and each K3 job's next run
    (none for the `disabled` ones: the scheduler does not tick them)."""
    now = now or k3.clock()
    _, end = k3.quota.period_bounds(now)
    plans = await k3.plan(now)
    categories: dict[str, Any] = {}
    for category, (usage, at_pace) in (await period_use(k3.ledger, now)).items():
        # Planned: each job's runs left at its expected cost (its share, whole runs only).
        planned = sum(p.planned_calls for p in plans.values()) if category == "utility" else 0.0
        categories[category] = {
            "period": k3.quota.period_of(now), "calls": usage.calls, "quota": usage.quota,
            "reserve": usage.reserve, "operator_calls": usage.operator_calls,
            "left_for_jobs": usage.job_left, "refused": usage.refused,
            "projected_at_pace": at_pace,
            "projected_as_planned": min(usage.calls + round(planned), usage.quota),
        }
    states = await queries.plan_states(k3.db, VENDOR)
    jobs = []
    for name in JOBS:
        state = states.get(name)
        off = name in disabled
        jobs.append({"job": name, "enabled": not off,
                     "next_due_at": state.next_due_at if state and not off else None,
                     "interval_seconds": None if off else plans[name].interval,
                     "runs_left_this_period": 0 if off else plans[name].runs,
                     "last_cost": state.last_cost if state else None,
                     "skip_reason": f"disabled ([jobs.{name}] enabled = false)" if off
                     else state.skip_reason if state else None})
    lateness = await queries.audit_lateness(k3.db, now - dt.timedelta(days=7))
    return {"plan": k3.quota.plan, "period_ends_at": end, "categories": categories,
            "jobs": jobs, "audit_lateness_7d": lateness}


def format_quota(status: dict[str, Any]) -> list[str]:
    """Lines for a terminal."""
    ends = status["period_ends_at"].strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"Codelocks quota ({status['plan']}), period ends {ends}:"]
    for category, c in status["categories"].items():
        lines.append(f"  {category:<8} {c['calls']:>6}/{c['quota']:<6} used ({c['period']}), "
                     f"{c['left_for_jobs']} left for jobs, reserve {c['reserve']} "
                     f"(operators used {c['operator_calls']}); projected: "
                     f"{c['projected_at_pace']} at this pace, {c['projected_as_planned']} as planned")
    for job in status["jobs"]:
        due = job["next_due_at"]
        every = job["interval_seconds"]
        # The next run as `syncd status`'s job table shows it (same instant, same format).
        when = due.isoformat(timespec="seconds") if due else \
            "-" if not job.get("enabled", True) else "at its next tick (not planned yet)"
        lines.append(f"  {job['job']:<11} next run {when}: ")
        lines[-1] += (f"every {every / 3600:.1f} h, {job['runs_left_this_period']} run(s) left"
                      if every else job["skip_reason"] if not job.get("enabled", True)
                      else f"skipping: {job['skip_reason'] or 'no budget'}")
    late = status["audit_lateness_7d"]
    if late["entries"]:
        lines.append(f"  audit entries seen in 7 days: {late['entries']}, first seen a median "
                     f"{late['median_seconds'] / 3600:.1f} h (worst {late['max_seconds'] / 3600:.1f} h)"
                     " after they happened")
    return lines

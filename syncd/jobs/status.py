"""What `syncd status` and `GET /api/v1/status` report, and the health verdict monitoring uses.

Verdicts (and `syncd status` exit codes): ok (0); degraded (1): an enabled job's latest run
failed, the NeoLock subscription is not registered, or pushed events failed; down (2): the
database cannot be reached (decided by the caller, which could not collect anything).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import syncd
from syncd.db import alerts, drift, ops
from syncd.db.pool import Database


class Health(enum.IntEnum):
    """Overall health; the value is `syncd status`'s exit code."""

    OK = 0
    DEGRADED = 1
    DOWN = 2


@dataclasses.dataclass(frozen=True)
class Backlog:
    """Pushed events not yet processed."""

    pending: int
    oldest_seconds: float | None


async def inbox_backlog(db: Database) -> Backlog:
    """How many pushed events wait, and how long the oldest has waited."""
    row = await db.fetchrow("status_inbox_backlog")
    assert row is not None
    return Backlog(int(row["pending"]), row["oldest_seconds"])


def _next_run(run: Mapping[str, Any] | None, interval: float | None,
              now: dt.datetime) -> dt.datetime | None:
    # An estimate from the last start: the scheduler jitters, and runs soon after a restart.
    if interval is None:
        return None
    if run is None or run.get("started_at") is None:
        return now
    started: dt.datetime = run["started_at"]
    return max(started + dt.timedelta(seconds=interval), now)


async def collect_status(db: Database, schedule: Mapping[str, float | None], *,
                         neolock_configured: bool = False,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Every known job with its interval, last run, last success and next run; inbox; subscription.

    `schedule` maps each available job to its interval (None: disabled); runs of jobs no longer
    available are listed as disabled.
    """
    now = now or dt.datetime.now(dt.UTC)
    latest = await ops.latest_runs(db)
    jobs: list[dict[str, Any]] = []
    for name, interval in sorted(schedule.items()):
        jobs.append(_job(name, interval, latest.pop(name, None), now))
    jobs.extend(_job(name, None, run, now) for name, run in sorted(latest.items()))
    failing = [j["job"] for j in jobs if j["enabled"] and j["last_run"]
               and j["last_run"]["status"] == "failed"]
    inbox = await ops.inbox_counts(db)
    backlog = await inbox_backlog(db)
    sub = await ops.get_subscription(db, "neolock")
    subscription = None if sub is None else {
        "url": sub.public_url + "<secret>", "status": sub.status, "secret": sub.secret_source,
        "registered_at": sub.registered_at, "checked_at": sub.checked_at,
        "last_error": sub.last_error}
    problems = [f"job {name} failing" for name in failing]
    if neolock_configured and (sub is None or sub.status != "registered"):
        problems.append("NeoLock subscription " + (sub.status if sub else "not registered"))
    if inbox.get("failed"):
        problems.append(f"{inbox['failed']} pushed event(s) failed")
    open_drift = {f"{kind}/{severity}": n for (kind, severity), n in
                  sorted((await drift.open_counts(db)).items())}
    deliveries = {f"{hook}/{state}": n for (hook, state), n in
                  sorted((await alerts.counts(db)).items())}
    if any(key.endswith("/dead") for key in deliveries):
        problems.append("alert deliveries gave up (dead): " + ", ".join(
            k for k in deliveries if k.endswith("/dead")))
    health = Health.DEGRADED if problems else Health.OK
    return {"version": syncd.__version__, "checked_at": now,
            "health": health.name.lower(), "problems": problems,
            "jobs": jobs, "failing_jobs": failing, "inbox": inbox,
            "inbox_backlog": {"pending": backlog.pending,
                              "oldest_pending_seconds": backlog.oldest_seconds},
            "subscriptions": {"neolock": subscription}, "drift_open": open_drift,
            "alert_deliveries": deliveries}


def _job(name: str, interval: float | None, run: dict[str, Any] | None,
         now: dt.datetime) -> dict[str, Any]:
    last_success = run.pop("last_success_at", None) if run else None
    if run:
        run.pop("job", None)
    return {"job": name, "enabled": interval is not None, "interval_seconds": interval,
            "last_run": run, "last_success_at": last_success,
            "next_run_at": _next_run(run, interval, now)}


def json_default(value: Any) -> Any:
    """JSON for status values: timestamps in ISO 8601 with their zone."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)

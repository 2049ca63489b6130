"""What `syncd status` and `GET /api/v1/status` report: jobs and their last runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.db import alerts, drift, ops
from syncd.db.pool import Database


async def collect_status(db: Database, schedule: Mapping[str, float | None]) -> dict[str, Any]:
    """Every known job with its interval and latest run, plus runs of jobs no longer scheduled."""
    latest = await ops.latest_runs(db)
    jobs: list[dict[str, Any]] = []
    for name, interval in sorted(schedule.items()):
        run = latest.pop(name, None)
        jobs.append({"job": name, "enabled": interval is not None, "interval_seconds": interval,
                     "last_run": run})
    jobs.extend({"job": name, "enabled": False, "interval_seconds": None, "last_run": run}
                for name, run in sorted(latest.items()))
    failing = [j["job"] for j in jobs if j["last_run"] and j["last_run"]["status"] == "failed"]
    inbox = await ops.inbox_counts(db)
    sub = await ops.get_subscription(db, "neolock")
    subscription = None if sub is None else {
        "url": sub.public_url + "<secret>", "status": sub.status, "secret": sub.secret_source,
        "registered_at": sub.registered_at, "checked_at": sub.checked_at,
        "last_error": sub.last_error}
    open_drift = {f"{kind}/{severity}": n for (kind, severity), n in
                  sorted((await drift.open_counts(db)).items())}
    deliveries = {f"{hook}/{state}": n for (hook, state), n in
                  sorted((await alerts.counts(db)).items())}
    return {"jobs": jobs, "failing_jobs": failing, "inbox": inbox,
            "subscriptions": {"neolock": subscription}, "drift_open": open_drift,
            "alert_deliveries": deliveries}

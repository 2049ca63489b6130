"""What `syncd status` and `GET /api/v1/status` report, and the health verdict monitoring uses.

Verdicts (and `syncd status` exit codes, the monitoring-plugin convention): ok (0); degraded (1,
WARNING): an enabled job's latest run failed or the job is overdue, a background task of a live
replica keeps dying, the NeoLock subscription is not registered, pushed events failed, or alert
deliveries are dead and not acknowledged (named per hook); down
(2, CRITICAL): no daemon replica beat within status.stale_after_seconds (unless
status.expect_daemon is false), or the database cannot be reached (decided by the caller, which
could not collect anything); unknown (3): the caller could not tell (e.g. a broken config).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import syncd
from syncd.db import alerts, drift, ops
from syncd.db import codelocks as plans
from syncd.db.pool import Database
from syncd.db.replicas import Replica, recent
from syncd.jobs.verdict import Health
from syncd.settings.service import StatusSettings
from syncd.sync.codelocks.quota import VENDOR as CODELOCKS


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


def next_run(interval: float | None, started: dt.datetime | None, planned: dt.datetime | None,
             daemon_since: dt.datetime | None, now: dt.datetime
             ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(when the next start is due, overdue since when or None) for one job.

    Due one interval after the later of its last start and the oldest live daemon's start (the
    scheduler runs every job soon after it starts); overdue with no start for two intervals.
    A planned job (the Codelocks planner) is due at its planned run, the very time `syncd quota`
    and status's Codelocks block show, and overdue one interval (a tick) after it, counted from
    the oldest live daemon's start when that is later; a run started since the plan renews it
    when it ends, so only a start that old makes it overdue. Without a start or a live daemon
    there is nothing to tell from.
    """
    if interval is None:
        return None, None
    step = dt.timedelta(seconds=interval)
    if planned is not None and (started is None or planned > started):
        late = max(planned, daemon_since) if daemon_since else planned
        return planned, (late if now > late + step else None)
    base = max((t for t in (started, daemon_since) if t is not None), default=None)
    if base is None:
        return None, None
    overdue = base + step if now > base + 2 * step else None
    return (planned if planned is not None else base + step), overdue


@dataclasses.dataclass(frozen=True)
class Liveness:
    """Which replicas live, and each job with its last run and whether it is overdue."""

    replicas: list[Replica]
    jobs: list[dict[str, Any]]

    @property
    def daemons_up(self) -> list[Replica]:
        """Daemon replicas that beat within the window."""
        return [r for r in self.replicas if r.kind == "daemon" and r.state == "up"]

    @property
    def overdue(self) -> list[str]:
        """Enabled jobs with no start when one was due."""
        return [j["job"] for j in self.jobs if j["overdue_since"] is not None]


async def liveness(db: Database, schedule: Mapping[str, float | None], policy: StatusSettings,
                   now: dt.datetime) -> Liveness:
    """Replicas by the database's clock, and every known job with its overdue flag.

    `schedule` maps each available job to its interval (None: disabled); runs of jobs no longer
    available are listed as disabled.
    """
    found = await recent(db, policy.stale_after_seconds)
    starts = [r.started_at for r in found if r.kind == "daemon" and r.state == "up"]
    daemon_since = min(starts, default=None)
    planned = {name: state.next_due_at
               for name, state in (await plans.plan_states(db, CODELOCKS)).items()}
    latest = await ops.latest_runs(db)
    jobs = [_job(name, interval, latest.pop(name, None), planned.get(name), daemon_since, now)
            for name, interval in sorted(schedule.items())]
    jobs.extend(_job(name, None, run, None, None, now) for name, run in sorted(latest.items()))
    return Liveness(found, jobs)


async def collect_status(db: Database, schedule: Mapping[str, float | None], *,
                         neolock_configured: bool = False,
                         policy: StatusSettings | None = None,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Replicas; every known job with its interval, last run, last success, next run and overdue
    flag; inbox; subscription; open drift; alert deliveries; and the verdict."""
    policy = policy or StatusSettings()
    now = now or dt.datetime.now(dt.UTC)
    live = await liveness(db, schedule, policy, now)
    jobs = live.jobs
    failing = [j["job"] for j in jobs if j["enabled"] and j["last_run"]
               and j["last_run"]["status"] == "failed"]
    inbox = await ops.inbox_counts(db)
    backlog = await inbox_backlog(db)
    sub = await ops.get_subscription(db, "neolock")
    subscription = None if sub is None else {
        "url": sub.public_url + "<secret>", "status": sub.status, "secret": sub.secret_source,
        "registered_at": sub.registered_at, "checked_at": sub.checked_at,
        "last_error": sub.last_error}
    down = _down(live, policy)
    problems = [down] if down else []
    problems += [f"job {name} failing" for name in failing]
    problems += [f"job {j['job']} overdue since {j['overdue_since'].isoformat(timespec='seconds')}"
                 for j in jobs if j["overdue_since"] is not None]
    problems += _tasks_down(live.replicas)
    if neolock_configured and (sub is None or sub.status != "registered"):
        problems.append("NeoLock subscription " + (sub.status if sub else "not registered"))
    if inbox.get("failed"):
        problems.append(f"{inbox['failed']} pushed event(s) failed")
    open_drift = [{"kind": kind, "severity": severity, "count": n} for (kind, severity), n in
                  sorted((await drift.open_counts(db)).items())]
    deliveries = [{"hook": hook, "status": state, "count": n} for (hook, state), n in
                  sorted((await alerts.counts(db)).items())]
    dead = [f"{d['hook']} {d['count']}" for d in deliveries if d["status"] == "dead"]
    if dead:  # acknowledged ones are no longer a problem
        problems.append("alert deliveries dead (gave up; `syncd alerts redeliver --dead` or "
                        "`syncd alerts ack`): " + ", ".join(dead))
    health = Health.DOWN if down else Health.DEGRADED if problems else Health.OK
    return {"version": syncd.__version__, "checked_at": now,
            "health": health.name.lower(), "problems": problems,
            "replicas": [_replica(r) for r in live.replicas],
            "expect_daemon": policy.expect_daemon,
            "stale_after_seconds": policy.stale_after_seconds,
            "jobs": jobs, "failing_jobs": failing, "overdue_jobs": live.overdue, "inbox": inbox,
            "inbox_backlog": {"pending": backlog.pending,
                              "oldest_pending_seconds": backlog.oldest_seconds},
            "subscriptions": {"neolock": subscription}, "drift_open": open_drift,
            "alert_deliveries": deliveries}


def _down(live: Liveness, policy: StatusSettings) -> str | None:
    """Why syncd is down (no daemon beating), or None."""
    if not policy.expect_daemon or live.daemons_up:
        return None
    last = max((r for r in live.replicas if r.kind == "daemon"), key=lambda r: r.beat_at,
               default=None)
    seen = "no daemon has ever registered" if last is None else (
        f"the last, {last.host}:{last.pid}, {'stopped' if last.stopped_at else 'beat'} at "
        f"{last.beat_at.isoformat(timespec='seconds')}")
    return (f"no daemon replica (`syncd run`) beat within {policy.stale_after_seconds:g}s: "
            f"{seen}")


def _tasks_down(found: list[Replica]) -> list[str]:
    """A line per background task that keeps dying on a live replica."""
    lines = []
    for replica in found:
        if replica.state != "up":
            continue
        for task, health in sorted(replica.tasks.items()):
            if isinstance(health, dict) and health.get("up") is False:
                lines.append(f"task {task} down on {replica.host}:{replica.pid} "
                             f"({health.get('restarts')} restarts; last: "
                             f"{health.get('last_error') or 'unknown'})")
    return lines


def _replica(replica: Replica) -> dict[str, Any]:
    body = dataclasses.asdict(replica)
    body["id"] = str(replica.id)
    body["silent_seconds"] = round(replica.silent_seconds, 1)
    return body


def _job(name: str, interval: float | None, run: dict[str, Any] | None,
         planned: dt.datetime | None, daemon_since: dt.datetime | None,
         now: dt.datetime) -> dict[str, Any]:
    last_success = run.pop("last_success_at", None) if run else None
    if run:
        run.pop("job", None)
    due, overdue_since = next_run(interval, run.get("started_at") if run else None, planned,
                                  daemon_since, now)
    return {"job": name, "enabled": interval is not None, "interval_seconds": interval,
            "last_run": run, "last_success_at": last_success,
            "next_run_at": due, "overdue_since": overdue_since}


def json_default(value: Any) -> Any:
    """JSON for status values: timestamps in ISO 8601 with their zone."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)

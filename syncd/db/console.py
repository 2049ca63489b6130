"""Typed fronts for the operator console's read-only queries (`sql/queries/console.sql`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Database


@dataclasses.dataclass(frozen=True)
class RunPoint:
    """One finished job run, as a point of the duration chart."""

    started_at: dt.datetime
    seconds: float
    status: str
    items: int
    requests: int


async def job_durations(db: Database, runs: int = 50) -> dict[str, list[RunPoint]]:
    """Each job's latest `runs` finished runs, oldest first, by job."""
    found: dict[str, list[RunPoint]] = {}
    for r in await db.fetch("console_job_durations", runs):
        found.setdefault(r["job"], []).append(
            RunPoint(r["started_at"], max(float(r["seconds"]), 0.0), r["status"], int(r["items"]),
                     int(r["requests"])))
    return found


@dataclasses.dataclass(frozen=True)
class CaseRow:
    """A drift case as the drift page lists it."""

    id: int
    kind: str
    subject: str
    provider: str | None
    severity: str
    expected: str | None
    actual: str | None
    status: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None
    plan: dict[str, Any] | None
    suppressed_until: dt.datetime | None
    suppressed_reason: str | None


async def drift_cases(db: Database, *, status: str | None, kind: str | None,
                      severity: str | None, limit: int = 500) -> list[CaseRow]:
    """Cases with `status`, `kind` and `severity` (None: any), newest first."""
    rows = await db.fetch("console_drift_cases", status, kind, severity, limit)
    return [CaseRow(**{**dict(r), "plan": None if r["plan"] is None else dict(r["plan"])})
            for r in rows]


@dataclasses.dataclass(frozen=True)
class Facet:
    """How many cases have one (status, kind, severity)."""

    status: str
    kind: str
    severity: str
    cases: int


async def drift_facets(db: Database) -> list[Facet]:
    """Case counts by (status, kind, severity): the filter's choices and the tabs' counts."""
    return [Facet(r["status"], r["kind"], r["severity"], int(r["cases"]))
            for r in await db.fetch("console_drift_facets")]


@dataclasses.dataclass(frozen=True)
class PastCase:
    """A case of the same kind and subject as the one shown."""

    id: int
    status: str
    severity: str
    expected: str | None
    actual: str | None
    first_seen_at: dt.datetime
    resolved_at: dt.datetime | None


async def case_history(db: Database, case_id: int, limit: int = 50) -> list[PastCase]:
    """Every case of this case's kind and subject, newest first (the case itself included)."""
    return [PastCase(**dict(r)) for r in await db.fetch("console_case_history", case_id, limit)]


@dataclasses.dataclass(frozen=True)
class CaseAlert:
    """An alert a case queued, with its delivery to one hook (hook None: not fanned out yet)."""

    event_id: str
    type: str
    created_at: dt.datetime
    hook: str | None
    status: str | None
    attempts: int | None
    last_status: int | None
    last_error: str | None
    finished_at: dt.datetime | None


async def case_alerts(db: Database, case_id: int) -> list[CaseAlert]:
    """The alerts of a case (opened, escalated, reminders, resolved) and their deliveries, oldest
    first."""
    return [CaseAlert(**dict(r)) for r in await db.fetch("console_case_alerts", case_id)]


@dataclasses.dataclass(frozen=True)
class CaseAction:
    """One action log row on a case's subject."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    provider: str | None
    outcome: str
    detail: dict[str, Any]


async def case_actions(db: Database, subject: str, since: dt.datetime, until: dt.datetime | None,
                       limit: int = 100) -> list[CaseAction]:
    """Actions on `subject` between `since` and `until` (None: now), oldest first."""
    rows = await db.fetch("console_case_actions", subject, since, until, limit)
    return [CaseAction(**{**dict(r), "detail": dict(r["detail"])}) for r in rows]


@dataclasses.dataclass(frozen=True)
class HookDeliveries:
    """One hook's deliveries by state and its latest error."""

    hook: str
    pending: int = 0
    delivered: int = 0
    dead: int = 0  # not acknowledged
    acknowledged: int = 0  # dead, acknowledged by an operator
    stopped: int = 0
    last_delivered_at: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None


async def alert_hooks(db: Database) -> list[HookDeliveries]:
    """Deliveries per hook (hooks with none are not listed), by hook name."""
    return [HookDeliveries(**dict(r)) for r in await db.fetch("console_alert_hooks")]


@dataclasses.dataclass(frozen=True)
class DeliveryRow:
    """One alert delivery with its alert."""

    id: int
    event_id: str
    type: str
    subject: str | None
    case_id: int | None
    hook: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    next_attempt_at: dt.datetime


async def recent_deliveries(db: Database, status: str | None, limit: int = 100) -> list[DeliveryRow]:
    """The latest deliveries with `status` (None: any), newest first."""
    return [DeliveryRow(**dict(r)) for r in await db.fetch("console_alert_recent", limit, status)]


@dataclasses.dataclass(frozen=True)
class CallPoint:
    """A job run that finished in the quota period, and the requests it made."""

    job: str
    finished_at: dt.datetime
    requests: int


async def k3_runs(db: Database, since: dt.datetime, jobs: Sequence[str]) -> list[CallPoint]:
    """Runs of `jobs` that finished since `since`, oldest first."""
    return [CallPoint(r["job"], r["finished_at"], int(r["requests"]))
            for r in await db.fetch("console_k3_runs", since, list(jobs))]


async def usage_by_job(db: Database, vendor: str, period: str) -> list[tuple[str, str, int]]:
    """(job, category, calls) of `vendor` in quota period `period`."""
    return [(r["job"], r["category"], int(r["calls"]))
            for r in await db.fetch("console_usage_by_job", vendor, period)]


@dataclasses.dataclass(frozen=True)
class PhoneState:
    """Phones at one provider in one vendor state."""

    provider: str
    vendor_state: str | None
    phones: int
    in_drift: int


async def phone_states(db: Database) -> list[PhoneState]:
    """Present phones by provider and vendor state."""
    return [PhoneState(r["provider"], r["vendor_state"], int(r["phones"]), int(r["in_drift"]))
            for r in await db.fetch("console_phone_states")]


async def terminal_states(db: Database) -> dict[str, int]:
    """Terminals by state (online, offline, missing, unknown)."""
    return {r["state"]: int(r["terminals"]) for r in await db.fetch("console_terminal_states")}


async def app_devices_per_day(db: Database, days: int = 30) -> list[tuple[dt.date, int]]:
    """(day, devices first registered that day) for the last `days` days (UTC), oldest first."""
    return [(r["day"], int(r["devices"]))
            for r in await db.fetch("console_app_devices_per_day", days)]


async def app_devices_total(db: Database) -> tuple[int, int]:
    """(devices registered, of which banned)."""
    row = await db.fetchrow("console_app_devices_total")
    return (0, 0) if row is None else (int(row["devices"]), int(row["banned"]))

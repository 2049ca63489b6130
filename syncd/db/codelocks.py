"""Codelocks' named queries (sql/queries/codelocks.sql), each behind one typed function."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Connection, Database, translate
from syncd.db.queries import get as sql


@dataclasses.dataclass(frozen=True)
class Usage:
    """A ledger row: calls counted in one (vendor, category, period) and its limits."""

    calls: int
    quota: int
    reserve: int
    operator_calls: int
    refused: int = 0

    @property
    def job_limit(self) -> int:
        """The most calls the period may reach through scheduled jobs."""
        return self.quota - max(self.reserve - self.operator_calls, 0)

    @property
    def job_left(self) -> int:
        """Calls scheduled jobs may still make this period."""
        return max(self.job_limit - self.calls, 0)


def _usage(row: Any) -> Usage:
    return Usage(int(row["calls"]), int(row["quota"]), int(row["reserve"]),
                 int(row["operator_calls"]))


# --- the quota ledger (connection-level: the caller holds the transaction) -------------------


async def usage_ensure(conn: Connection, vendor: str, category: str, period: str, quota: int,
                       reserve: int) -> None:
    """Create the period's ledger row or bring its quota and reserve up to date."""
    with translate():
        await conn.execute(sql("api_usage_ensure"), vendor, category, period, quota, reserve)


async def usage_reserve(conn: Connection, vendor: str, category: str, period: str,
                        operator: bool) -> Usage | None:
    """Count one call if allowed (row locked until commit); None when refused."""
    with translate():
        row = await conn.fetchrow(sql("api_usage_reserve"), vendor, category, period, operator)
    return None if row is None else _usage(row)


async def usage_refused(conn: Connection, vendor: str, category: str, period: str) -> Usage:
    """Count a refused call; the row as it stands."""
    with translate():
        row = await conn.fetchrow(sql("api_usage_refused"), vendor, category, period)
    assert row is not None  # usage_ensure ran in the same transaction
    return _usage(row)


async def usage_exhaust(conn: Connection, vendor: str, category: str, period: str) -> Usage | None:
    """Raise the period's count to its quota (the vendor counted more); None if already there."""
    with translate():
        row = await conn.fetchrow(sql("api_usage_exhaust"), vendor, category, period)
    return None if row is None else _usage(row)


async def usage_job_add(conn: Connection, vendor: str, category: str, period: str,
                        job: str) -> None:
    """Count one call against the job (or "operator") that made it."""
    with translate():
        await conn.execute(sql("api_usage_job_add"), vendor, category, period, job)


async def usage_get_conn(conn: Connection, vendor: str, category: str, period: str) -> int:
    """Calls counted so far in a period, inside the caller's transaction (0 if none)."""
    with translate():
        value = await conn.fetchval(sql("api_usage_get"), vendor, category, period)
    return 0 if value is None else int(value)


async def usage_get(db: Database, vendor: str, category: str, period: str) -> Usage | None:
    """The ledger row of a period, if any call was counted in it."""
    row = await db.fetchrow("api_usage_get", vendor, category, period)
    return None if row is None else Usage(row["calls"], row["quota"], row["reserve"],
                                          row["operator_calls"], row["refused"])


async def usage_list(db: Database, vendor: str) -> list[dict[str, Any]]:
    """Every ledger row of a vendor, newest period first."""
    return [dict(r) for r in await db.fetch("api_usage_list", vendor)]


async def usage_by_job(db: Database, vendor: str, category: str, period: str) -> dict[str, int]:
    """Calls per job (and "operator") in one period."""
    return {r["job"]: int(r["calls"]) for r in await db.fetch("api_usage_jobs_get", vendor,
                                                               category, period)}


# --- the planner's state -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlanState:
    """What the planner decided for a job, and why it last skipped."""

    job: str
    interval_seconds: float | None
    next_due_at: dt.datetime | None
    last_run_at: dt.datetime | None
    last_cost: int | None
    skip_reason: str | None
    skipped_at: dt.datetime | None


async def plan_states(db: Database, vendor: str) -> dict[str, PlanState]:
    """The planner's state of every job of `vendor`, by job."""
    return {r["job"]: PlanState(**dict(r)) for r in await db.fetch("quota_plan_all", vendor)}


async def plan_ran(db: Database, vendor: str, job: str, interval: float | None,
                   next_due_at: dt.datetime, ran_at: dt.datetime, cost: int,
                   skip_reason: str | None) -> None:
    """Record a run, its cost and the next planned run."""
    await db.execute("quota_plan_ran", vendor, job, interval, next_due_at, ran_at, cost,
                     skip_reason)


async def plan_skipped(db: Database, vendor: str, job: str, next_due_at: dt.datetime,
                       at: dt.datetime, reason: str) -> None:
    """Record that a job skipped for lack of budget, and when to look again."""
    await db.execute("quota_plan_skipped", vendor, job, next_due_at, at, reason)


# --- K3 data ----------------------------------------------------------------------------------


async def present_locks(db: Database) -> dict[str, str]:
    """Lock id → access key ref of every lock still listed."""
    return {r["lock_id"]: r["access_key_ref"] for r in await db.fetch("k3_locks_present")}


async def mark_locks_gone(conn: Connection, access_key_ref: str, listed: Sequence[str],
                          at: dt.datetime) -> int:
    """Mark the access key's locks missing from its complete listing as gone; how many."""
    with translate():
        status = await conn.execute(sql("k3_locks_gone"), at, access_key_ref, list(listed))
    return int(status.split()[-1])


async def mark_clients_gone(conn: Connection, lock_id: str, listed: Sequence[str],
                            at: dt.datetime) -> int:
    """Mark the lock's clients missing from its complete listing as gone; how many."""
    with translate():
        status = await conn.execute(sql("k3_clients_gone"), at, lock_id, list(listed))
    return int(status.split()[-1])


@dataclasses.dataclass(frozen=True)
class AuditRow:
    """One audit entry to store."""

    lock_id: str
    audit_entry_id: int
    entered_at: dt.datetime
    entry_type: str
    entry_text: str
    raw: dict[str, Any]


async def insert_audit(conn: Connection, rows: Sequence[AuditRow],
                       seen_at: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """Store new entries (known ones are left alone); (id, entered_at) of those new."""
    if not rows:
        return []
    with translate():
        new = await conn.fetch(
            sql("k3_audit_insert"), [r.lock_id for r in rows], [r.audit_entry_id for r in rows],
            [r.entered_at for r in rows], [r.entry_type for r in rows],
            [r.entry_text for r in rows], [seen_at] * len(rows), [r.raw for r in rows])
    return [(int(r["audit_entry_id"]), r["entered_at"]) for r in new]


async def audit_max_id(db: Database, lock_id: str) -> int | None:
    """The highest audit entry id stored for a lock."""
    value = await db.fetchval("k3_audit_max_id", lock_id)
    return None if value is None else int(value)


async def audit_lateness(db: Database, since: dt.datetime) -> dict[str, float | int | None]:
    """Entries first seen since `since`, and the median and worst seconds after DateEntered."""
    row = await db.fetchrow("k3_audit_lateness", since)
    assert row is not None
    return {"entries": int(row["entries"]),
            "median_seconds": None if row["median_seconds"] is None else
            float(row["median_seconds"]),
            "max_seconds": None if row["max_seconds"] is None else float(row["max_seconds"])}


async def lock_access_ref(db: Database, lock_id: str) -> str | None:
    """The access key ref a lock was listed under, if known."""
    value = await db.fetchval("k3_lock_access_ref", lock_id)
    return None if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class StoredLock:
    """A lock as its last listing left it in vendor.k3_locks."""

    lock_id: str
    lock_name: str | None
    access_key_ref: str
    timezone: str | None
    timezone_offset: str | None
    gone_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class StoredClient:
    """A smartphone client as the lock's last complete listing showed it."""

    email: str
    status: str | None
    access_type: str | None
    last_seen_at: dt.datetime


async def lock_get(db: Database, lock_id: str) -> StoredLock | None:
    """The lock as last listed (gone or not); None if never listed."""
    row = await db.fetchrow("k3_lock_get", lock_id)
    return None if row is None else StoredLock(**dict(row))


async def lock_clients(db: Database, lock_id: str) -> list[StoredClient]:
    """The clients the lock had at its last complete listing."""
    return [StoredClient(**dict(r)) for r in await db.fetch("k3_lock_clients", lock_id)]


# --- the NetCode ledger -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IssuedCode:
    """A ledger entry of a NetCode (the code still sealed)."""

    id: int
    code_sealed: bytes
    expires_at: dt.datetime
    issued_at: dt.datetime
    issued_by: str


async def netcode_find(db: Database, params_ref: str, asked_by: str) -> IssuedCode | None:
    """The NetCode issued with these parameters, counting the repeat; None if never issued."""
    row = await db.fetchrow("netcode_find", params_ref, asked_by)
    return None if row is None else IssuedCode(row["id"], bytes(row["code_sealed"]),
                                               row["expires_at"], row["issued_at"],
                                               row["issued_by"])


async def netcode_insert(conn: Connection, params_ref: str, lock_id: str, lock_model: str,
                         start: dt.datetime, duration_id: int, expires_at: dt.datetime,
                         code_sealed: bytes, issued_by: str) -> int:
    """Record a NetCode just issued (inside the caller's transaction); its id."""
    with translate():
        return int(await conn.fetchval(sql("netcode_insert"), params_ref, lock_id, lock_model,
                                       start, duration_id, expires_at, code_sealed, issued_by))

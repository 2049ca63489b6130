"""Drift rules for Codelocks K3 locks: pure functions of facts and `now`, plus the SQL that reads
the facts (set-based: who is missing or unexpected is a FULL JOIN in `report.k3_clients`).

Each finding is a `Finding` (provider `codelocks`); the subject is the lock id, or
`<lock id>/<email>` for a smartphone client:
- `k3_battery_low`: a lock reports a battery status in `codelocks.battery_low`;
- `k3_lock_silent`: no audit entry for `codelocks.silent_days` (or none at all);
- `k3_client_unexpected`: a smartphone client with access (ACTIVE, or PENDING: it gains access when
  it accepts) that `local.k3_clients` does not expect (absent, or `enabled = false`);
- `k3_client_missing` / `k3_client_suspended`: an enabled `local.k3_clients` row whose client is
  not on the lock, or is suspended.
Locks marked gone raise nothing: a lock that was unpaired is not drifting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from syncd.db.pool import Database
from syncd.reconcile.findings import Finding, Severity

K3_KINDS = frozenset({"k3_battery_low", "k3_lock_silent", "k3_client_unexpected",
                      "k3_client_missing", "k3_client_suspended"})
HAS_ACCESS = ("ACTIVE", "PENDING")


@dataclasses.dataclass(frozen=True)
class LockFact:
    """What the rules need of a lock."""

    lock_id: str
    lock_name: str | None
    battery_status: str | None
    battery_updated_at: dt.datetime | None
    last_audit_at: dt.datetime | None
    first_seen_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class ClientFact:
    """A row of report.k3_clients: the vendor's client joined with the expected one."""

    lock_id: str
    email: str
    status: str | None  # the vendor's status, or "missing"
    access_type: str | None
    expected: bool


def _finding(kind: str, subject: str, severity: Severity, expected: str, actual: str,
             **detail: Any) -> Finding:
    return Finding(kind, subject, severity, expected, actual, detail, provider="codelocks")


def battery_low(locks: Iterable[LockFact], low: Sequence[str]) -> list[Finding]:
    """A finding per lock whose battery status is one of `low` (case-insensitive)."""
    levels = {value.strip().lower() for value in low}
    return [_finding("k3_battery_low", lock.lock_id,
                     "critical" if (lock.battery_status or "").lower() == "critical" else "warning",
                     "battery not low", f"battery {lock.battery_status}", lock_name=lock.lock_name,
                     battery_updated_at=lock.battery_updated_at and lock.battery_updated_at
                     .isoformat())
            for lock in locks if (lock.battery_status or "").strip().lower() in levels]


def silent_locks(locks: Iterable[LockFact], now: dt.datetime,
                 silent_for: dt.timedelta) -> list[Finding]:
    """A finding per lock with no audit entry within `silent_for` of `now`.

    A lock never heard from is silent only once it has been known for `silent_for` (a newly paired
    lock has had no time to sync its audit).
    """
    found = []
    for lock in locks:
        last = lock.last_audit_at
        if last is None and (lock.first_seen_at is None or now - lock.first_seen_at < silent_for):
            continue
        if last is not None and now - last < silent_for:
            continue
        days = silent_for.total_seconds() / 86400
        found.append(_finding("k3_lock_silent", lock.lock_id, "warning",
                              f"an audit entry within {days:g} days",
                              "no audit entry at all" if last is None else
                              f"last audit entry {last.isoformat()}", lock_name=lock.lock_name))
    return found


def client_drift(clients: Iterable[ClientFact]) -> list[Finding]:
    """Unexpected clients with access, and expected clients missing or suspended."""
    found = []
    for c in clients:
        subject = f"{c.lock_id}/{c.email}"
        status = (c.status or "").upper()
        if not c.expected and status in HAS_ACCESS:
            found.append(_finding("k3_client_unexpected", subject,
                                  "critical" if status == "ACTIVE" else "warning",
                                  "no access (not in local.k3_clients, or disabled there)",
                                  f"client {status}", access_type=c.access_type))
        elif c.expected and status == "MISSING":
            found.append(_finding("k3_client_missing", subject, "warning",
                                  "a client of the lock", "not a client of the lock",
                                  access_type=c.access_type))
        elif c.expected and status == "SUSPENDED":
            found.append(_finding("k3_client_suspended", subject, "warning", "client ACTIVE",
                                  "client SUSPENDED", access_type=c.access_type))
    return found


def k3_rules(locks: Sequence[LockFact], clients: Sequence[ClientFact], now: dt.datetime, *,
             battery_levels: Sequence[str], silent_for: dt.timedelta) -> list[Finding]:
    """Every K3 finding, from the facts and `now`."""
    return (battery_low(locks, battery_levels) + silent_locks(locks, now, silent_for)
            + client_drift(clients))


async def k3_facts(db: Database) -> tuple[list[LockFact], list[ClientFact]]:
    """The present locks and the joined client rows, from the database."""
    locks = [LockFact(**dict(r)) for r in await db.fetch("k3_drift_locks")]
    clients = [ClientFact(**dict(r)) for r in await db.fetch("k3_drift_clients")]
    return locks, clients


async def k3_findings(db: Database, now: dt.datetime, *, battery_levels: Sequence[str],
                      silent_for: dt.timedelta) -> list[Finding]:
    """Read the facts and apply every K3 rule."""
    locks, clients = await k3_facts(db)
    return k3_rules(locks, clients, now, battery_levels=battery_levels, silent_for=silent_for)

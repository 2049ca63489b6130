"""Pure rules for phones under contract (NeoLock and Knox Guard alike): data and `now` in, findings out.

The SQL (`reconcile_phone_candidates`) hands over only contracts that are not plainly settled:
the vendor does not know the device, its state is not the settled one for the desired state, or
its licence ends within the horizon. These rules decide, with grace windows, what is drift.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from syncd.reconcile.findings import Finding, Thresholds, iso

# Knox Guard API states in which a contract's wish is met and nothing is moving.
SETTLED: dict[str, frozenset[str]] = {
    "locked": frozenset({"Locked"}),
    "active": frozenset({"Enrolled", "Blinked"}),
    "completed": frozenset({"Completed"}),
}
# States that are on their way somewhere: fine for a while, drift when they last too long.
TRANSITIONAL = frozenset({"Locking", "Unlocking", "Completing", "Accepted", "Pending",
                          "StartingReminder", "StoppingReminder"})
# In-flight states that agree with the desired state (the stuck rule bounds how long they may last).
# Locking is the exception the business cares about: it agrees only within the grace window.
AGREEING: dict[str, frozenset[str]] = {
    "locked": frozenset(),
    "active": frozenset({"Unlocking", "StartingReminder", "StoppingReminder", "Accepted",
                         "Pending"}),
    "completed": frozenset({"Completing"}),
}
LOCKED_OUT = frozenset({"Locked", "Locking"})

KINDS = frozenset({"phone_missing", "phone_not_locked", "phone_locked_out", "phone_not_completed",
                   "phone_state_differs", "phone_stuck", "phone_licence_expiring",
                   "phone_unknown"})


@dataclasses.dataclass(frozen=True)
class ContractRow:
    """A contract and the vendor row that holds its device (vendor fields None when unknown)."""

    device_uid: str
    desired_state: str
    contract_updated_at: dt.datetime
    provider: str | None = None
    vendor_state: str | None = None
    state_since: dt.datetime | None = None  # the vendor row's last change
    license_expiry: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Holder:
    """A provider's (not gone) row for a device."""

    provider: str
    vendor_state: str | None
    state_since: dt.datetime | None
    license_expiry: dt.datetime | None


def pick_holder(desired: str, pinned: str | None, holders: list[Holder]) -> Holder | None:
    """The row a contract is judged by: its pinned provider's, else a settled one, else the latest."""
    eligible = [h for h in holders if pinned is None or h.provider == pinned]
    if not eligible:
        return None
    settled = [h for h in eligible if h.vendor_state in SETTLED.get(desired, ())]
    aware = dt.datetime.min.replace(tzinfo=dt.UTC)
    return max(settled or eligible, key=lambda h: (h.license_expiry or aware, h.state_since or aware))


def contract_row(uid: str, desired: str, updated: dt.datetime,
                 holder: Holder | None) -> ContractRow:
    """A contract with the vendor row it is judged by (or none)."""
    if holder is None:
        return ContractRow(uid, desired, updated)
    return ContractRow(uid, desired, updated, holder.provider, holder.vendor_state,
                       holder.state_since, holder.license_expiry)


@dataclasses.dataclass(frozen=True)
class UnknownRow:
    """A device a vendor holds that no contract names."""

    provider: str
    device_uid: str
    vendor_state: str | None


def contract_findings(row: ContractRow, now: dt.datetime, th: Thresholds) -> list[Finding]:
    """Every finding for one contract: state drift (after the grace window), stuck, licence."""
    found: list[Finding] = []
    desired, state = row.desired_state, row.vendor_state
    base = {"desired": desired, "contract_updated_at": iso(row.contract_updated_at)}
    if row.provider is None:
        return [Finding("phone_missing", row.device_uid, "warning", desired,
                        "unknown to the vendor", base,
                        opens=now - row.contract_updated_at >= th.grace)]
    since = max(row.contract_updated_at, row.state_since or row.contract_updated_at)
    held = now - since >= th.grace  # a mismatch younger than this may be a command in flight
    state_age = now - (row.state_since or since)
    detail = base | {"vendor_state": state, "state_since": iso(row.state_since)}
    mismatch = _state_mismatch(row.device_uid, desired, state, state_age, th, detail, row.provider)
    if mismatch is not None:
        found.append(dataclasses.replace(mismatch, opens=held))
    elif mismatch is None and state in TRANSITIONAL and state_age > th.transitional:
        found.append(Finding("phone_stuck", row.device_uid, "warning", desired, state, detail,
                             row.provider))
    if row.license_expiry is not None and row.license_expiry - now <= th.licence:
        expired = row.license_expiry <= now
        found.append(Finding(
            "phone_licence_expiring", row.device_uid, "critical" if expired else "warning",
            f"licence valid beyond {th.licence.days} days",
            f"{'expired' if expired else 'expires'} {iso(row.license_expiry)}",
            {"license_expiry": iso(row.license_expiry)}, row.provider))
    return found


def _state_mismatch(uid: str, desired: str, state: str | None, age: dt.timedelta,
                    th: Thresholds, detail: dict[str, Any], provider: str) -> Finding | None:
    if state in SETTLED.get(desired, ()) or state in AGREEING.get(desired, ()):
        return None
    if desired == "locked" and state == "Locking" and age <= th.grace:
        return None
    actual = state or "no state"
    if desired == "locked":
        return Finding("phone_not_locked", uid, "warning", "Locked", actual, detail, provider)
    if desired == "active" and state in LOCKED_OUT:
        return Finding("phone_locked_out", uid, "critical", "active (unlocked)", actual, detail,
                       provider)
    if desired == "completed":
        return Finding("phone_not_completed", uid, "warning", "Completed", actual, detail,
                       provider)
    return Finding("phone_state_differs", uid, "warning", desired, actual, detail, provider)


def unknown_finding(row: UnknownRow) -> Finding:
    """A device no contract names: reported for information, never remediated."""
    return Finding("phone_unknown", row.device_uid, "info", "a contract", "no contract",
                   {"vendor_state": row.vendor_state}, row.provider)

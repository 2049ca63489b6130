"""The rule sets reconcile runs: each loads its rows with set-based SQL and applies pure rules.

A rule set is a `RuleSet(name, kinds, enabled, find)`:
- `kinds`: every finding kind it can produce. After a run, open cases of these kinds that no
  finding names are resolved, so a rule set that is disabled, or that failed to load, never
  resolves cases it did not look at.
- `enabled(settings)`: whether it runs with this configuration (e.g. its vendor is configured).
- `find(db, settings, now)`: its findings (`Finding(kind, subject, severity, expected, actual,
  detail, provider)`). Load rows with named queries (`sql/queries/*.sql`), then call pure
  functions of the rows and `now`; no clock reads, no vendor calls.

Plugging in a vendor (e.g. Codelocks) is a few lines: write `k3_findings(row, now, thresholds)`
in `syncd/reconcile/rules/k3.py`, a loader here, and append
`RuleSet("k3", K3_KINDS, lambda s: s.codelocks is not None, find_k3)` to `RULE_SETS`.
Give kinds a vendor prefix (`k3_…`, `phone_…`) so (kind, subject) stays unambiguous; add a
remediation by mapping the kind to an action in `plan.ACTIONS` and the action to a
`Remediator` in `remediate.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable

from syncd.db import ops
from syncd.db.pool import Database
from syncd.reconcile.findings import Finding, Thresholds
from syncd.reconcile.rules import health, k3, phones, terminals
from syncd.settings.core import Settings
from syncd.sync.subscription import hook_base

Find = Callable[[Database, Settings, dt.datetime], Awaitable[list[Finding]]]


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """A named group of rules over one data source (see the module docstring)."""

    name: str
    kinds: frozenset[str]
    enabled: Callable[[Settings], bool]
    find: Find


def thresholds(settings: Settings) -> Thresholds:
    """The `[reconcile]` thresholds (and BioTime's online window) as a `Thresholds`."""
    conf = settings.reconcile
    window = settings.biotime.online_window_seconds if settings.biotime else 600.0
    return Thresholds(
        grace=dt.timedelta(seconds=conf.grace_seconds),
        transitional=dt.timedelta(seconds=conf.transitional_seconds),
        licence=dt.timedelta(days=conf.licence_days),
        terminal_offline=dt.timedelta(seconds=conf.terminal_offline_seconds),
        online_window=dt.timedelta(seconds=window),
        job_failures=conf.job_failures)


# --- typed fronts of the reconcile_* queries --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PhoneCandidates:
    """Contracts to judge (uid → desired, updated_at, pinned provider) and devices without one."""

    contracts: dict[str, tuple[str, dt.datetime, str | None]]
    unknown: list[phones.UnknownRow]


async def phone_candidates(db: Database, licence_horizon: dt.datetime) -> PhoneCandidates:
    """Contracts not plainly settled and devices no contract names (`reconcile_phone_candidates`)."""
    found = PhoneCandidates({}, [])
    for r in await db.fetch("reconcile_phone_candidates", licence_horizon):
        if r["contract_uid"] is None:
            found.unknown.append(phones.UnknownRow(r["provider"], r["device_uid"],
                                                   r["vendor_state"]))
        else:
            found.contracts[r["contract_uid"]] = (r["desired_state"], r["contract_updated_at"],
                                                  r["pinned"])
    return found


async def phone_holders(db: Database, uids: list[str]) -> dict[str, list[phones.Holder]]:
    """Every provider's (not gone) row for `uids`, by device uid."""
    holders: dict[str, list[phones.Holder]] = {}
    for r in await db.fetch("reconcile_phone_holders", uids):
        holders.setdefault(r["device_uid"], []).append(phones.Holder(
            r["provider"], r["vendor_state"], r["last_changed_at"], r["license_expiry"]))
    return holders


async def terminal_candidates(db: Database, now: dt.datetime,
                              window: dt.timedelta) -> list[terminals.TerminalRow]:
    """Terminals missing, unknown, not online or differing (see `reconcile_terminal_candidates`)."""
    rows = await db.fetch("reconcile_terminal_candidates", now, window)
    return [terminals.TerminalRow(
        r["sn"], r["expected"], r["listed"], r["terminal_id"], r["alias"], r["area_code"],
        r["expected_alias"], r["expected_area_code"], r["state"], r["last_activity"],
        r["first_seen_at"]) for r in rows]


async def job_runs(db: Database, count: int) -> list[health.JobRuns]:
    """Every job's latest `count` finished runs."""
    rows = await db.fetch("reconcile_job_runs", count)
    return [health.JobRuns(r["job"], tuple(r["statuses"]), r["last_error"]) for r in rows]


# --- the rule sets ---------------------------------------------------------------------------


async def find_phones(db: Database, settings: Settings, now: dt.datetime) -> list[Finding]:
    """Contracts × vendor.phones (every provider), and devices without a contract."""
    th = thresholds(settings)
    candidates = await phone_candidates(db, now + th.licence)
    holders = await phone_holders(db, list(candidates.contracts))
    found = [f for uid, (desired, updated, pinned) in candidates.contracts.items()
             for f in phones.contract_findings(
                 phones.contract_row(uid, desired, updated,
                                     phones.pick_holder(desired, pinned, holders.get(uid, []))),
                 now, th)]
    return found + [phones.unknown_finding(row) for row in candidates.unknown]


async def find_terminals(db: Database, settings: Settings, now: dt.datetime) -> list[Finding]:
    """local.terminals × vendor.terminals."""
    th = thresholds(settings)
    return [dataclasses.replace(f, provider="biotime")
            for row in await terminal_candidates(db, now, th.online_window)
            for f in terminals.terminal_findings(row, now, th)]


async def find_health(db: Database, settings: Settings, now: dt.datetime) -> list[Finding]:
    """Jobs failing N runs in a row; the NeoLock subscription lost or pointing elsewhere."""
    th = thresholds(settings)
    found = [f for runs in await job_runs(db, th.job_failures)
             for f in health.job_findings(runs, th)]
    if settings.neolock is not None:
        sub = await ops.get_subscription(db, "neolock")
        row = None if sub is None else health.SubscriptionRow(
            "neolock", sub.status, sub.public_url, sub.last_error)
        public = settings.server.public_url
        found += health.subscription_findings(row, hook_base(str(public)) if public else None)
    return found


async def find_k3(db: Database, settings: Settings, now: dt.datetime) -> list[Finding]:
    """Codelocks K3: low batteries, silent locks, smartphone clients against local.k3_clients."""
    conf = settings.codelocks
    assert conf is not None  # enabled() checked it
    return await k3.k3_findings(db, now, battery_levels=conf.battery_low,
                                silent_for=dt.timedelta(days=conf.silent_days))


RULE_SETS: list[RuleSet] = [
    RuleSet("phones", phones.KINDS,
            lambda s: s.neolock is not None or s.knoxguard is not None, find_phones),
    RuleSet("terminals", terminals.TERMINAL_KINDS, lambda s: s.biotime is not None,
            find_terminals),
    RuleSet("health", health.HEALTH_KINDS, lambda s: True, find_health),
    RuleSet("k3", k3.K3_KINDS, lambda s: s.codelocks is not None, find_k3),
]

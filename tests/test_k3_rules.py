"""K3 drift rules: pure functions of facts and now, and the SQL that gathers the facts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import aiohttp

from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import CodelocksSim, create_app
from syncd.devtools.simulators.common import serve
from syncd.reconcile.engine import reconcile
from syncd.reconcile.rules.k3 import (
    ClientFact,
    LockFact,
    battery_low,
    client_drift,
    k3_findings,
    silent_locks,
)
from syncd.settings.core import Settings
from tests.clocks import Clock
from tests.k3_env import START, k3_context, k3_jobs, k3_settings, run_all

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def lock(lock_id: str, battery: str = "Good", last_audit: dt.datetime | None = NOW,
         first_seen: dt.datetime | None = NOW - dt.timedelta(days=30)) -> LockFact:
    """A lock fact."""
    return LockFact(lock_id, f"Lock {lock_id}", battery, NOW, last_audit, first_seen)


def test_battery_low_flags_configured_levels_only() -> None:
    """Low and Critical batteries raise a finding (critical for Critical); Good does not."""
    found = battery_low([lock("a", "Good"), lock("b", "Low"), lock("c", "critical")],
                        ["Low", "Critical"])
    assert [(f.subject, f.severity) for f in found] == [("b", "warning"), ("c", "critical")]
    assert {f.kind for f in found} == {"k3_battery_low"} and {f.provider for f in found} == {
        "codelocks"}


def test_silent_lock_after_n_days_but_not_a_newly_paired_one() -> None:
    """No audit for 7 days is silent; a lock paired yesterday with no audit yet is not."""
    found = silent_locks([lock("old", last_audit=NOW - dt.timedelta(days=8)),
                          lock("recent", last_audit=NOW - dt.timedelta(days=6)),
                          lock("never", last_audit=None),
                          lock("new", last_audit=None, first_seen=NOW - dt.timedelta(days=1))],
                         NOW, WEEK)
    assert [f.subject for f in found] == ["old", "never"]


def test_client_rules_unexpected_missing_suspended() -> None:
    """An unexpected ACTIVE/PENDING client, an expected one missing or suspended: one finding each;
    an expected ACTIVE client and an unexpected SUSPENDED one raise nothing."""
    found = client_drift([
        ClientFact("l1", "ok@x", "ACTIVE", "STANDARD", True),
        ClientFact("l1", "intruder@x", "ACTIVE", "STANDARD", False),
        ClientFact("l1", "invited@x", "PENDING", "ONE_TIME", False),
        ClientFact("l1", "gone@x", "missing", "STANDARD", True),
        ClientFact("l1", "paused@x", "SUSPENDED", "STANDARD", True),
        ClientFact("l1", "revoked@x", "SUSPENDED", "STANDARD", False),
    ])
    assert [(f.kind, f.subject) for f in found] == [
        ("k3_client_unexpected", "l1/intruder@x"), ("k3_client_unexpected", "l1/invited@x"),
        ("k3_client_missing", "l1/gone@x"), ("k3_client_suspended", "l1/paused@x")]


async def test_findings_from_a_synced_database(db: Database) -> None:
    """After a sync, the SQL facts give the rules what the simulator shows: low batteries, clients
    unexpected (none expected yet), and an expected client that is missing."""
    clock = Clock(START)
    sim = CodelocksSim(seed=4, locks=4, now=clock.now)
    async with serve(create_app(sim)) as running, aiohttp.ClientSession() as http:
        await run_all(db, k3_jobs(k3_context(db, k3_settings(sim, running), http, clock)))
    first = next(iter(sim.locks))
    async with db.connection() as conn:
        await conn.execute("INSERT INTO local.k3_clients (lock_id, email) VALUES ($1, 'x@y.z')",
                           first)
    found = await k3_findings(db, clock.now(), battery_levels=["Low", "Critical"],
                              silent_for=WEEK)
    kinds = {(f.kind, f.subject) for f in found}
    low = {lk.lock_id for lk in sim.locks.values()
           if lk.battery_status in ("Low", "Critical")}
    assert {s for k, s in kinds if k == "k3_battery_low"} == low
    with_access = {f"{c.lock_id}/{c.email}" for cs in sim.clients.values()
                   for c in cs.values() if c.status in ("ACTIVE", "PENDING")}
    assert {s for k, s in kinds if k == "k3_client_unexpected"} == with_access
    assert ("k3_client_missing", f"{first}/x@y.z") in kinds


async def test_reconcile_opens_and_resolves_k3_cases(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """The reconcile engine runs the K3 rule set: an expected client missing from its lock opens a
    `k3_client_missing` case in report.drift, and the case resolves once local.k3_clients no
    longer expects that client."""
    clock = Clock(START)
    sim = CodelocksSim(seed=4, locks=4, now=clock.now)
    async with serve(create_app(sim)) as running, aiohttp.ClientSession() as http:
        conf = k3_settings(sim, running)
        await run_all(db, k3_jobs(k3_context(db, conf, http, clock)))
    settings = make_settings(codelocks=conf.model_dump(mode="json") | {
        "api_key": sim.api_key, "access_keys": list(sim.access_keys)})
    first = next(iter(sim.locks))
    async with db.connection() as conn:
        await conn.execute("INSERT INTO local.k3_clients (lock_id, email) VALUES ($1, 'x@y.z')",
                           first)
    await reconcile(db, settings, clock.now())
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT kind, status FROM report.drift WHERE subject = $1",
                                f"{first}/x@y.z")
        assert [(r["kind"], r["status"]) for r in rows] == [("k3_client_missing", "open")]
        await conn.execute("DELETE FROM local.k3_clients")
    await reconcile(db, settings, clock.now() + dt.timedelta(minutes=5))
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM report.drift WHERE subject = $1",
                                     f"{first}/x@y.z")
    assert status == "resolved"

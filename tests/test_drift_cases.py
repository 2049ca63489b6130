"""Drift cases in ops.drift: planted drift opens exactly the expected cases, once, with alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from syncd.db import drift
from syncd.db.pool import Database
from syncd.reconcile.engine import reconcile
from syncd.settings.core import Settings

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
NEO = {"base_url": "http://127.0.0.1:9/api", "login": "l", "password": "p"}


def settings_with(make_settings: Callable[..., Settings], **reconcile: Any) -> Settings:
    return make_settings(neolock=NEO, reconcile={"grace_seconds": 600, **reconcile})


async def phone(db: Database, uid: str, state: str | None, *, changed: dt.datetime = T0 - HOUR,
                expiry: dt.datetime | None = None, provider: str = "neolock") -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO vendor.phones (provider, device_uid, vendor_state, license_expiry, raw,"
            " first_seen_at, last_seen_at, last_changed_at) VALUES ($1, $2, $3, $4, '{}', $5, $5, $5)"
            " ON CONFLICT (provider, device_uid) DO UPDATE SET vendor_state = $3,"
            " last_changed_at = $5",
            provider, uid, state, expiry, changed)


async def contract(db: Database, uid: str, desired: str, *,
                   updated: dt.datetime = T0 - 2 * HOUR) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO local.phone_contracts (device_uid, desired_state, updated_at)"
            " VALUES ($1, $2, $3) ON CONFLICT (device_uid) DO UPDATE SET desired_state = $2,"
            " updated_at = $3", uid, desired, updated)


async def open_cases(db: Database) -> set[tuple[str, str]]:
    return {(c.kind, c.subject) for c in await drift.list_cases(db, "open")}


async def outbox(db: Database) -> list[tuple[str, str]]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT event_id, type FROM ops.outbox ORDER BY id")
    return [(r["event_id"], r["type"]) for r in rows]


async def test_planted_drift_opens_exactly_the_expected_cases(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Healthy contracts open nothing; each planted disagreement opens its one case."""
    settings = settings_with(make_settings)
    for uid, desired, state in [("ok-lock", "locked", "Locked"), ("ok-act", "active", "Enrolled"),
                                ("ok-done", "completed", "Completed"),
                                ("ok-blink", "active", "Blinked"),
                                ("bad-lock", "locked", "Enrolled"),
                                ("bad-act", "active", "Locked"),
                                ("bad-done", "completed", "Locked")]:
        await contract(db, uid, desired)
        await phone(db, uid, state)
    await contract(db, "nowhere", "locked")
    await phone(db, "stray", "Enrolled")
    await contract(db, "kg-lock", "locked")
    await phone(db, "kg-lock", "Locked", provider="knoxguard")
    await contract(db, "exp", "active")
    await phone(db, "exp", "Enrolled", expiry=T0 + dt.timedelta(days=3))
    result = await reconcile(db, settings, T0)
    assert await open_cases(db) == {
        ("phone_not_locked", "bad-lock"), ("phone_locked_out", "bad-act"),
        ("phone_not_completed", "bad-done"), ("phone_missing", "nowhere"),
        ("phone_unknown", "stray"), ("phone_licence_expiring", "exp")}
    assert result.merge.opened == 6
    cases = {c.kind: c for c in await drift.list_cases(db, "open")}
    assert cases["phone_locked_out"].severity == "critical"
    assert cases["phone_unknown"].severity == "info" and cases["phone_unknown"].plan is None
    assert cases["phone_not_locked"].plan == {"action": "phone.lock", "allowed": True}
    assert cases["phone_locked_out"].plan == {
        "action": "phone.unlock", "allowed": False, "reason": "reconcile.allow_unlock is off"}
    # Alerts for warning and above; the info case is recorded but not alerted.
    ids = {event_id for event_id, _ in await outbox(db)}
    assert ids == {f"drift-{c.id}-opened" for c in cases.values() if c.severity != "info"}


async def test_second_reconcile_with_nothing_changed_writes_no_rows(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Reconciling again (even minutes later) writes no case rows and queues no alerts."""
    settings = settings_with(make_settings)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    await reconcile(db, settings, T0)
    versions = "SELECT array_agg(xmin::text ORDER BY id) FROM ops.drift"  # changes on any write
    async with db.connection() as conn:
        before = await conn.fetchval(versions)
    again = await reconcile(db, settings, T0 + dt.timedelta(minutes=5))
    assert again.merge.written == 0 and again.merge.alerts == 0
    async with db.connection() as conn:
        assert await conn.fetchval(versions) == before
    assert len(await outbox(db)) == 1


async def test_resolve_then_reopen_as_a_new_case_with_stable_alert_ids(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Fixing the vendor side resolves the case; drift coming back opens a new case id."""
    settings = settings_with(make_settings)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    await reconcile(db, settings, T0)
    (first,) = await drift.list_cases(db, "open")
    await phone(db, "d1", "Locked", changed=T0 + dt.timedelta(minutes=1))
    result = await reconcile(db, settings, T0 + dt.timedelta(minutes=2))
    assert result.merge.resolved == 1 and await open_cases(db) == set()
    resolved = await drift.get_case(db, first.id)
    assert resolved is not None and resolved.status == "resolved"
    assert resolved.resolved_at == T0 + dt.timedelta(minutes=2)
    await phone(db, "d1", "Enrolled", changed=T0 + dt.timedelta(minutes=3))
    await reconcile(db, settings, T0 + dt.timedelta(minutes=30))
    (second,) = await drift.list_cases(db, "open")
    assert second.id != first.id and second.kind == "phone_not_locked"
    assert [e for e, _ in await outbox(db)] == [
        f"drift-{first.id}-opened", f"drift-{first.id}-resolved", f"drift-{second.id}-opened"]


async def test_a_command_in_flight_does_not_flap(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A contract just switched to locked, then Locking, then Locked: no case ever opens."""
    settings = settings_with(make_settings)
    await phone(db, "d1", "Enrolled")
    await contract(db, "d1", "locked", updated=T0)
    await reconcile(db, settings, T0 + dt.timedelta(minutes=1))  # vendor not yet told
    await phone(db, "d1", "Locking", changed=T0 + dt.timedelta(minutes=2))
    await reconcile(db, settings, T0 + dt.timedelta(minutes=8))
    await phone(db, "d1", "Locked", changed=T0 + dt.timedelta(minutes=9))
    await reconcile(db, settings, T0 + dt.timedelta(minutes=30))
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ops.drift") == 0


async def test_suppression_hides_a_case_until_it_expires(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A suppressed case reads 'suppressed' in report.drift, then 'open' after its expiry."""
    settings = settings_with(make_settings)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    await reconcile(db, settings, T0)
    (case,) = await drift.list_cases(db, "open")
    now = dt.datetime.now(dt.UTC)
    assert await drift.suppress(db, case.id, now + dt.timedelta(seconds=1), "known", "cli:ann")
    shown = await drift.get_case(db, case.id)
    assert shown is not None and shown.status == "suppressed"
    assert shown.suppressed_reason == "known" and shown.suppressed_by == "cli:ann"
    assert await drift.open_counts(db) == {}
    async with db.connection() as conn:  # let the suppression lapse without waiting
        await conn.execute("UPDATE ops.drift SET suppressed_until = now() - interval '1 s'")
    shown = await drift.get_case(db, case.id)
    assert shown is not None and shown.status == "open"
    assert await drift.open_counts(db) == {("phone_not_locked", "warning"): 1}


async def test_job_failing_and_recovering_alert_under_their_own_names(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Three failed runs in a row open job_failing (job.failing); a good run resolves it."""
    settings = settings_with(make_settings, job_failures=3)
    async with db.connection() as conn:
        for i, status in enumerate(["ok", "failed", "failed"]):
            await conn.execute("INSERT INTO ops.sync_runs (job, started_at, status, error, runner)"
                               " VALUES ('neolock-devices', $1, $2, 'boom', 't')",
                               T0 + dt.timedelta(minutes=i), status)
    await reconcile(db, settings, T0)
    assert await open_cases(db) == set()
    async with db.connection() as conn:
        await conn.execute("INSERT INTO ops.sync_runs (job, started_at, status, error, runner)"
                           " VALUES ('neolock-devices', $1, 'failed', 'boom', 't')",
                           T0 + dt.timedelta(minutes=5))
    await reconcile(db, settings, T0 + dt.timedelta(minutes=6))
    assert await open_cases(db) == {("job_failing", "neolock-devices")}
    async with db.connection() as conn:
        await conn.execute("INSERT INTO ops.sync_runs (job, started_at, status, runner)"
                           " VALUES ('neolock-devices', $1, 'ok', 't')", T0 + dt.timedelta(minutes=7))
    await reconcile(db, settings, T0 + dt.timedelta(minutes=8))
    assert [t for _, t in await outbox(db)] == ["job.failing", "job.recovered"]


async def test_terminal_drift_opens_only_for_the_planted_terminals(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Healthy terminals open nothing; missing, unknown, offline and differing ones open their case."""
    settings = make_settings(biotime={"base_url": "http://127.0.0.1:9", "token": "t"})
    now = dt.datetime.now(dt.UTC)
    rows = [("OK1", "Door", "HQ", 1, now), ("OFF1", "Gate", "HQ", 0, now - 3 * HOUR),
            ("DIFF1", "Dorr", "S01", 1, now), ("STRAY1", "Stray", "HQ", 1, now)]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO vendor.terminals (sn, terminal_id, alias, area_code, state, last_activity,"
            " raw, first_seen_at, last_seen_at, last_changed_at) VALUES ($1, $2, $3, $4, $5, $6,"
            " '{}', $6, $6, $6)",
            [(sn, i + 1, alias, area, state, seen)
             for i, (sn, alias, area, state, seen) in enumerate(rows)])
        await conn.executemany("INSERT INTO local.terminals (sn, alias, area_code) VALUES ($1, $2, $3)",
                               [("OK1", "Door", "HQ"), ("OFF1", "Gate", None),
                                ("DIFF1", "Door", "HQ"), ("LOST1", "Back", "HQ")])
    await reconcile(db, settings, now)
    assert await open_cases(db) == {("terminal_offline", "OFF1"), ("terminal_differs", "DIFF1"),
                                    ("terminal_unknown", "STRAY1"), ("terminal_missing", "LOST1")}
    (differs,) = [c for c in await drift.list_cases(db, "open") if c.kind == "terminal_differs"]
    assert differs.plan == {"action": "terminal.update", "allowed": True}
    assert differs.provider == "biotime"


async def test_concurrent_reconciles_open_each_case_once(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Two reconciles at once (daemon and CLI) still give one case and one alert per drift."""
    import asyncio

    settings = settings_with(make_settings)
    for i in range(20):
        await contract(db, f"d{i}", "locked")
        await phone(db, f"d{i}", "Enrolled")
    results = await asyncio.gather(*(reconcile(db, settings, T0) for _ in range(3)))
    assert sum(r.merge.opened for r in results) == 20
    assert len(await drift.list_cases(db, "open")) == 20 and len(await outbox(db)) == 20

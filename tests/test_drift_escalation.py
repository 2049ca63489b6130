"""Escalation and reminders of open drift cases: one alert per severity reached, one per period.

Real reconciles (the engine's SQL) on the real database at a fake `now`; alerts delivered by the
real deliverer to the alert receiver simulator, which checks signatures on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.alerts.deliverer import Deliverer
from syncd.db import drift
from syncd.db.pool import Database
from syncd.devtools.simulators.alert_receiver import AlertReceiver, create_app
from syncd.devtools.simulators.common import serve
from syncd.errors import ConfigError
from syncd.reconcile.engine import reconcile
from syncd.settings import core as config
from syncd.settings.core import Settings
from syncd.settings.drift import AlertSettings
from tests.test_alerts import SECRET, conf, drain
from tests.test_drift_cases import T0, contract, phone, settings_with

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
CODELOCKS = {"base_url": "http://127.0.0.1:9", "api_key": "k3-api-key-never-called",
             "access_keys": ["k3-access-key"], "plan": "Business 1"}


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[AlertReceiver, str]]:
    """A running alert receiver and its base URL."""
    state = AlertReceiver(SECRET)
    async with serve(create_app(state)) as running:
        yield state, running.url


async def outbox(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    """(webhook-id, type, payload) of every queued alert, in queue order."""
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT event_id, type, payload FROM ops.outbox ORDER BY id")
    return [(r["event_id"], r["type"], dict(r["payload"])) for r in rows]


async def ids(db: Database) -> list[str]:
    """The webhook-ids queued, in queue order."""
    return [event_id for event_id, _, _ in await outbox(db)]


async def the_case(db: Database) -> drift.Case:
    (case,) = await drift.list_cases(db, None)
    return case


def at(value: Any) -> dt.datetime:
    """A payload's ISO 8601 timestamp as an aware datetime."""
    return dt.datetime.fromisoformat(str(value))


async def licence(db: Database, uid: str, expiry: dt.datetime) -> None:
    """An active contract on an enrolled phone whose licence ends at `expiry`."""
    await contract(db, uid, "active")
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO vendor.phones (provider, device_uid, vendor_state, license_expiry, raw,"
            " first_seen_at, last_seen_at, last_changed_at) VALUES ('neolock', $1, 'Enrolled', $2,"
            " '{}', $3, $3, $3) ON CONFLICT (provider, device_uid) DO UPDATE SET"
            " license_expiry = $2", uid, expiry, T0 - 2 * HOUR)


async def battery(db: Database, lock_id: str, status: str) -> None:
    """A K3 lock (paired just now, so not silent) reporting `status` for its battery."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO vendor.k3_locks (lock_id, access_key_ref, lock_name, battery_status,"
            " battery_updated_at, raw, first_seen_at, last_seen_at, last_changed_at)"
            " VALUES ($1, 'ref', 'Front door', $2, $3, '{}', $3, $3, $3)"
            " ON CONFLICT (lock_id) DO UPDATE SET battery_status = $2",
            lock_id, status, T0)


async def test_a_licence_that_expires_while_its_case_is_open_escalates_once(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """An expiring licence (warning) that expires sends one signed drift.escalated, with the
    opened alert's fields plus previous_severity; reconciling again sends nothing more."""
    state, url = receiver
    settings = settings_with(make_settings)
    await licence(db, "lic-1", T0 + 3 * DAY)
    await reconcile(db, settings, T0)
    case = await the_case(db)
    assert case.kind == "phone_licence_expiring" and case.severity == "warning"
    expired_at = T0 + 3 * DAY + HOUR
    result = await reconcile(db, settings, expired_at)
    assert (result.merge.escalated, result.merge.alerts) == (1, 1)
    (_, _, opened), (event_id, kind, escalated) = await outbox(db)
    assert event_id == f"drift-{case.id}-escalated-critical" and kind == "drift.escalated"
    assert set(escalated) == set(opened) | {"previous_severity"}
    assert (escalated["severity"], escalated["previous_severity"],
            escalated["announced_severity"]) == ("critical", "warning", "critical")
    assert escalated["actual"].startswith("expired") and escalated["case_id"] == case.id
    assert at(escalated["timestamp"]) == expired_at
    for later in (expired_at + HOUR, expired_at + DAY):
        again = await reconcile(db, settings, later)
        assert (again.merge.escalated, again.merge.alerts) == (0, 0)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-escalated-critical"]
    deliverer = Deliverer(db, session, conf(url + "/hook"))
    await drain(deliverer, until=lambda: len(state.received) >= 2)
    await deliverer.run_once()
    assert [(r.webhook_id, r.verified, r.body["type"]) for r in state.received] == [
        (f"drift-{case.id}-opened", True, "drift.opened"),
        (f"drift-{case.id}-escalated-critical", True, "drift.escalated")]


async def test_a_severity_that_falls_sends_nothing_nor_does_rising_again_to_it(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """K3 battery Low → Critical escalates; back to Low is recorded on the case but sends
    nothing (a reminder still announces critical); Critical again sends nothing either."""
    settings = make_settings(codelocks=CODELOCKS, reconcile={"renotify_hours": 24})
    await battery(db, "K3-1", "Low")
    await reconcile(db, settings, T0)
    await battery(db, "K3-1", "Critical")
    assert (await reconcile(db, settings, T0 + HOUR)).merge.escalated == 1
    await battery(db, "K3-1", "Low")
    fell = await reconcile(db, settings, T0 + 2 * HOUR)
    assert (fell.merge.updated, fell.merge.alerts) == (1, 0)
    case = await the_case(db)
    assert case.severity == "warning" and case.status == "open"
    assert (await reconcile(db, settings, T0 + 25 * HOUR)).merge.reminded == 1
    (_, _, reminder) = (await outbox(db))[-1]
    assert (reminder["severity"], reminder["announced_severity"]) == ("warning", "critical")
    await battery(db, "K3-1", "Critical")
    rose = await reconcile(db, settings, T0 + 26 * HOUR)
    assert (rose.merge.updated, rose.merge.alerts) == (1, 0)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-escalated-critical",
                             f"drift-{case.id}-reminder-1"]


async def test_alertmanager_sees_the_old_severity_end_and_the_new_one_fire(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """To Alertmanager an escalation ends the warning alert and fires a critical one; re-sends
    and the resolution carry the announced severity even after the case's own fell back."""
    state, url = receiver
    settings = make_settings(codelocks=CODELOCKS)
    deliverer = Deliverer(db, session, AlertSettings(
        hooks=[{"url": url, "format": "alertmanager", "name": "am"}], poll_seconds=0.01))
    await battery(db, "K3-1", "Low")
    await reconcile(db, settings, T0)
    await battery(db, "K3-1", "Critical")
    await reconcile(db, settings, T0 + HOUR)
    await drain(deliverer, until=lambda: len(state.received) == 2)
    fired, escalation = (r.body for r in state.received)
    assert [(a["labels"]["severity"], at(a["endsAt"]) > dt.datetime.now(dt.UTC))
            for a in fired] == [("warning", True)]
    ended, firing = escalation
    assert ended["labels"] == fired[0]["labels"] and at(ended["endsAt"]) == T0 + HOUR
    assert firing["labels"] == fired[0]["labels"] | {"severity": "critical"}
    assert at(firing["endsAt"]) > dt.datetime.now(dt.UTC)
    await battery(db, "K3-1", "Low")  # falls: nothing sent, but Alertmanager keeps critical
    await reconcile(db, settings, T0 + 2 * HOUR)
    await deliverer.resend_firing()
    assert [a["labels"]["severity"] for a in state.received[-1].body] == ["critical"]
    await battery(db, "K3-1", "Good")
    await reconcile(db, settings, T0 + 3 * HOUR)
    await drain(deliverer, until=lambda: len(state.received) == 4)
    (resolution,) = state.received[-1].body
    assert resolution["labels"] == firing["labels"] and at(resolution["endsAt"]) == T0 + 3 * HOUR


async def test_an_escalation_across_alert_min_severity_is_the_cases_opened_alert(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """With alert_min_severity critical, an expiring licence sends nothing; once expired the
    receiver, which never heard of the case, gets drift.opened (not escalated), then resolved."""
    settings = settings_with(make_settings, alert_min_severity="critical")
    await licence(db, "lic-1", T0 + 3 * DAY)
    await reconcile(db, settings, T0)
    assert await outbox(db) == []
    await reconcile(db, settings, T0 + 4 * DAY)
    case = await the_case(db)
    ((event_id, kind, payload),) = await outbox(db)
    assert (event_id, kind) == (f"drift-{case.id}-opened", "drift.opened")
    assert payload["severity"] == "critical" and "previous_severity" not in payload
    await licence(db, "lic-1", T0 + 400 * DAY)  # renewed
    await reconcile(db, settings, T0 + 5 * DAY)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-resolved"]


async def test_renotify_sends_one_reminder_per_period(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """With renotify_hours = 4, a case still open is reminded at 4 h, then 8 h: each reminder
    once, with its own webhook-id and number, however often reconcile runs in between."""
    state, url = receiver
    settings = settings_with(make_settings, renotify_hours=4)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    for minutes in (0, 60, 239, 240, 241, 270, 479, 480, 480, 485):
        await reconcile(db, settings, T0 + dt.timedelta(minutes=minutes))
    case = await the_case(db)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-reminder-1",
                             f"drift-{case.id}-reminder-2"]
    (_, kind, second) = (await outbox(db))[-1]
    assert kind == "drift.reminder" and second["reminder"] == 2
    assert at(second["timestamp"]) == T0 + 8 * HOUR and second["status"] == "open"
    deliverer = Deliverer(db, session, conf(url + "/hook"))
    await drain(deliverer, until=lambda: len(state.received) >= 3)
    await deliverer.run_once()
    assert state.ids() == await ids(db) and all(r.verified for r in state.received)


async def test_without_renotify_hours_an_open_case_is_announced_once(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """renotify_hours defaults to 0 (off): a case open for 30 days sent its opened alert only."""
    settings = settings_with(make_settings)
    assert settings.reconcile.renotify_hours == 0
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    for days in (0, 1, 7, 30):
        await reconcile(db, settings, T0 + days * DAY)
    assert [kind for _, kind, _ in await outbox(db)] == ["drift.opened"]


async def test_suppressed_cases_are_not_reminded_until_the_suppression_ends(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A case suppressed until 10 h gets no reminder at 4 h or 8 h; the first reconcile after
    the suppression lapses reminds once."""
    settings = settings_with(make_settings, renotify_hours=4)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    await reconcile(db, settings, T0)
    case = await the_case(db)
    assert await drift.suppress(db, case.id, T0 + 10 * HOUR, "customer called", "cli:ann")
    for hours in (4, 8, 9.9):
        assert (await reconcile(db, settings, T0 + hours * HOUR)).merge.reminded == 0
    for hours in (10.1, 11):
        await reconcile(db, settings, T0 + hours * HOUR)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-reminder-1"]


async def test_an_escalation_while_suppressed_is_sent_when_the_suppression_ends(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A licence that expires under suppression escalates at the first reconcile after it."""
    settings = settings_with(make_settings)
    await licence(db, "lic-1", T0 + 3 * DAY)
    await reconcile(db, settings, T0)
    case = await the_case(db)
    await drift.suppress(db, case.id, T0 + 5 * DAY, "renewal ordered", "cli:ann")
    await reconcile(db, settings, T0 + 4 * DAY)
    assert (await the_case(db)).severity == "critical"
    assert await ids(db) == [f"drift-{case.id}-opened"]
    await reconcile(db, settings, T0 + 5 * DAY + HOUR)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-escalated-critical"]


async def test_an_escalation_restarts_the_reminder_clock(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """The reminder period counts from the latest announcement: an escalation at 3 h puts the
    first reminder at 7 h, not 4 h."""
    settings = settings_with(make_settings, renotify_hours=4)
    await licence(db, "lic-1", T0 + 3 * HOUR)
    for hours in (0, 3, 4, 6.9, 7):
        await reconcile(db, settings, T0 + hours * HOUR)
    case = await the_case(db)
    assert await ids(db) == [f"drift-{case.id}-opened", f"drift-{case.id}-escalated-critical",
                             f"drift-{case.id}-reminder-1"]


async def test_a_case_that_clears_when_its_reminder_is_due_is_resolved_not_reminded(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Fixed by the time a reminder is due, the case sends drift.resolved and no reminder."""
    settings = settings_with(make_settings, renotify_hours=4)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    await reconcile(db, settings, T0)
    await phone(db, "d1", "Locked", changed=T0 + HOUR)
    await reconcile(db, settings, T0 + 5 * HOUR)
    assert [kind for _, kind, _ in await outbox(db)] == ["drift.opened", "drift.resolved"]


async def test_sync_health_reminders_keep_their_family_name(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A failing job's reminder is job.reminder (a hook listening to job.* gets it)."""
    settings = settings_with(make_settings, job_failures=3, renotify_hours=1)
    async with db.connection() as conn:
        for i in range(3):
            await conn.execute("INSERT INTO ops.sync_runs (job, started_at, status, error, runner)"
                               " VALUES ('neolock-devices', $1, 'failed', 'boom', 't')",
                               T0 - dt.timedelta(minutes=10 - i))
    await reconcile(db, settings, T0)
    await reconcile(db, settings, T0 + HOUR)
    assert [kind for _, kind, _ in await outbox(db)] == ["job.failing", "job.reminder"]


async def test_the_console_lists_each_cases_escalation_and_reminders(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """The console's case page query finds a case's opened, escalated and reminder alerts, and
    none of another case's."""
    from syncd.db.console import case_alerts

    settings = settings_with(make_settings, renotify_hours=24)
    await licence(db, "lic-1", T0 + 3 * DAY)
    await contract(db, "d1", "locked")
    await phone(db, "d1", "Enrolled")
    for days in (0, 4, 5):
        await reconcile(db, settings, T0 + days * DAY)
    cases = {c.kind: c.id for c in await drift.list_cases(db, "open")}
    for kind, suffixes in (("phone_licence_expiring", ["opened", "escalated-critical",
                                                       "reminder-1"]),
                           ("phone_not_locked", ["opened", "reminder-1", "reminder-2"])):
        shown = [a.event_id for a in await case_alerts(db, cases[kind])]
        assert shown == [f"drift-{cases[kind]}-{suffix}" for suffix in suffixes], kind


async def test_cases_announced_before_the_upgrade_escalate_from_what_was_announced(
        empty_db_dsn: str, make_settings: Callable[..., Settings]) -> None:
    """Migration 0019 reads what an open case's opened alert announced: a case whose licence
    expired under the previous version (warning announced, critical recorded) escalates once."""
    from syncd.db.migrate import _BOOTSTRAP, discover, migrate

    db = await Database.connect(empty_db_dsn)
    try:
        async with db.connection() as conn:  # the database as the previous version left it
            await conn.execute(_BOOTSTRAP)
            for migration in (m for m in discover() if m.version < 19):
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO ops.schema_migrations (version, name, checksum)"
                                   " VALUES ($1, $2, $3)", migration.version, migration.name,
                                   migration.checksum)
            case_id = await conn.fetchval(
                "INSERT INTO ops.drift (kind, subject, provider, severity, expected, actual,"
                " first_seen_at, last_seen_at) VALUES ('phone_licence_expiring', 'lic-1',"
                " 'neolock', 'warning', 'x', 'y', $1, $1) RETURNING id", T0 - 3 * DAY)
            await conn.execute("INSERT INTO ops.outbox (event_id, type, payload) SELECT"
                               " 'drift-' || d.id || '-opened', 'drift.opened',"
                               " ops.drift_alert(d, 'opened') FROM ops.drift d")
            await conn.execute("UPDATE ops.drift SET severity = 'critical'")  # expired since
        await licence(db, "lic-1", T0 - DAY)
        assert "0019_drift_escalation.sql" in await migrate(db)
        settings = settings_with(make_settings)
        for hours in (0, 1):
            await reconcile(db, settings, T0 + hours * HOUR)
        assert await ids(db) == [f"drift-{case_id}-opened", f"drift-{case_id}-escalated-critical"]
    finally:
        await db.close()


@pytest.mark.parametrize(("value", "problem"), [
    ("0.5", "reconcile.renotify_hours: must be 0 (off) or at least 1 hour (got 0.5)"),
    ("-1", "reconcile.renotify_hours: Input should be greater than or equal to 0 (got -1)"),
    ('"daily"', "reconcile.renotify_hours: Input should be a valid number, unable to parse "
                "string as a number (got 'daily')"),
])
def test_renotify_hours_is_off_or_at_least_an_hour(tmp_path: Path, value: str, problem: str) -> None:
    """check-config refuses a renotify_hours under an hour (but not 0), negative, or not a number."""
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[reconcile]\nrenotify_hours = {value}\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [problem]
    path.write_text(f'data_dir = "{tmp_path}"\n[reconcile]\nrenotify_hours = 24\n')
    assert config.load(path).reconcile.renotify_hours == 24

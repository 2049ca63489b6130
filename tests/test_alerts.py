"""The alert deliverer: Standard Webhooks signatures, retries, 410, leases, two deliverers, formats."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.alerts import formats
from syncd.alerts.deliverer import Deliverer, hooks_from
from syncd.db import alerts as queue
from syncd.db.actions import enqueue_alert
from syncd.db.pool import Database
from syncd.devtools.simulators.alert_receiver import AlertReceiver, create_app
from syncd.devtools.simulators.common import serve
from syncd.metrics import Metrics
from syncd.settings.drift import AlertSettings
from tests.conftest import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "c2VjcmV0LWJlaW5nLXJldGlyZWQtbm93"


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    """The spec's published vector signs to exactly the published signature."""
    signed = formats.sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                          b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_rotation_sends_one_signature_per_secret() -> None:
    """With two secrets, the header carries two signatures and either secret verifies it."""
    request = formats.standard_webhook("http://x/hook", [SECRET, OLD_SECRET], "drift-1-opened",
                                       {"type": "drift.opened"}, 1_700_000_000.0)
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (SECRET, OLD_SECRET):
        assert formats.verify(secret, request.headers, request.body)
    assert not formats.verify("whsec_" + "d3JvbmcxMjM0NTY3ODkwMTIzNDU2", request.headers,
                              request.body)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[AlertReceiver, str]]:
    """A running receiver and its base URL."""
    state = AlertReceiver(SECRET)
    async with serve(create_app(state)) as running:
        yield state, running.url


def conf(url: str, **extra: Any) -> AlertSettings:
    hook = {"url": url, "secret": SECRET, "name": "ops", **extra.pop("hook", {})}
    return AlertSettings(hooks=[hook], retry_base_seconds=0.01, retry_max_seconds=0.05,
                         poll_seconds=0.01, **extra)


async def drain(*deliverers: Deliverer, until: Any, rounds: int = 400) -> None:
    """Run the deliverers until `until()` holds (bounded number of rounds)."""
    for _ in range(rounds):
        await asyncio.gather(*(d.run_once() for d in deliverers))
        if until():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def statuses(db: Database) -> list[str]:
    async with db.connection() as conn:
        return [r["status"] for r in await conn.fetch(
            "SELECT status FROM ops.alert_deliveries ORDER BY id")]


async def test_receiver_down_then_up_gets_the_alert_signed(
        db: Database, session: aiohttp.ClientSession) -> None:
    """An alert queued while the receiver is down is delivered, verified, once it comes up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    await enqueue_alert(db, event_id="drift-7-opened", type="drift.opened",
                        payload={"type": "drift.opened", "case_id": 7})
    deliverer = Deliverer(db, session, conf(url))
    await deliverer.run_once()
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT status, attempts, last_error FROM ops.alert_deliveries")
    assert row is not None and row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]
    state = AlertReceiver(SECRET)
    async with serve(create_app(state), port=port):
        await drain(deliverer, until=lambda: bool(state.received))
    assert [(r.webhook_id, r.verified) for r in state.received] == [("drift-7-opened", True)]
    assert await statuses(db) == ["delivered"]


async def test_410_stops_the_delivery(db: Database, session: aiohttp.ClientSession,
                                      receiver: tuple[AlertReceiver, str]) -> None:
    """A receiver answering 410 Gone is not asked again for that alert."""
    state, url = receiver
    state.answers = [410]
    await enqueue_alert(db, event_id="e1", type="drift.opened", payload={"type": "drift.opened"})
    deliverer = Deliverer(db, session, conf(url + "/hook"))
    for _ in range(5):
        await deliverer.run_once()
        # an absence, shown over time: 0.1 s in all, twice retry_max, so a retry had one been
        # scheduled would have been due in these rounds
        await asyncio.sleep(0.02)
    assert state.refused == 1 and state.received == []
    assert await statuses(db) == ["stopped"]


async def test_retry_after_is_honoured(db: Database, session: aiohttp.ClientSession,
                                       receiver: tuple[AlertReceiver, str]) -> None:
    """A 503 with Retry-After: 3600 schedules the next attempt an hour out, not at the backoff."""
    state, url = receiver
    state.answers, state.retry_after = [503], "3600"
    await enqueue_alert(db, event_id="e1", type="drift.opened", payload={})
    await Deliverer(db, session, conf(url + "/hook")).run_once()
    async with db.connection() as conn:
        wait = await conn.fetchval("SELECT extract(epoch FROM next_attempt_at - now())"
                                   " FROM ops.alert_deliveries")
    assert 3000 < float(wait) <= 3600


async def test_alert_older_than_the_limit_is_dead_lettered_and_counted(
        db: Database, session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """A failing delivery past alerts.max_age_hours is kept as 'dead' and shows in the gauge."""
    state, url = receiver
    state.answers = [500, 500]
    await enqueue_alert(db, event_id="e1", type="drift.opened", payload={})
    metrics = Metrics()
    deliverer = Deliverer(db, session, conf(url + "/hook"), metrics=metrics)
    await deliverer.run_once()
    assert await statuses(db) == ["pending"]  # to be retried
    async with db.connection() as conn:  # the alert was queued 25 hours ago; its retry is due
        await conn.execute("UPDATE ops.outbox SET created_at = now() - interval '25 hours'")
        await conn.execute("UPDATE ops.alert_deliveries SET next_attempt_at = now()")
    await deliverer.run_once()
    assert await statuses(db) == ["dead"]
    await deliverer.refresh_gauges()
    assert b'syncd_alert_deliveries{hook="ops",status="dead"} 1.0' in metrics.render()


async def test_expired_lease_is_delivered_again_with_the_same_webhook_id(
        db: Database, session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """A deliverer killed after claiming (its lease never recorded) is replaced once the lease ends."""
    state, url = receiver
    await enqueue_alert(db, event_id="drift-9-opened", type="drift.opened", payload={"n": 9})
    survivor = Deliverer(db, session, conf(url + "/hook"))
    await queue.fan_out(db, [("ops", "%")], max_age=dt.timedelta(days=1))
    (claimed,) = await queue.claim(db, ["ops"], dt.timedelta(seconds=0.3))  # then "kill -9"
    await survivor.run_once()
    assert state.received == []  # still leased to the dead deliverer
    await drain(survivor, until=lambda: bool(state.received))  # taken once the 0.3 s lease ends
    assert state.ids() == [claimed.event_id] == ["drift-9-opened"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT attempts FROM ops.alert_deliveries") == 2


async def test_two_deliverers_on_one_database_deliver_each_alert_once(
        db: Database, session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """Two deliverers draining 40 alerts together send each webhook id exactly once."""
    state, url = receiver
    for i in range(40):
        await enqueue_alert(db, event_id=f"e{i}", type="drift.opened", payload={"i": i})
    first, second = (Deliverer(db, session, conf(url + "/hook")) for _ in range(2))
    await drain(first, second, until=lambda: len(state.received) >= 40)
    await asyncio.gather(first.run_once(), second.run_once())
    counts = collections.Counter(state.ids())
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert all(r.verified for r in state.received)


async def test_events_filter_routes_alert_types(db: Database, session: aiohttp.ClientSession,
                                                receiver: tuple[AlertReceiver, str]) -> None:
    """A hook listening to job.* gets job.failing but not drift.opened."""
    state, url = receiver
    await enqueue_alert(db, event_id="a", type="drift.opened", payload={})
    await enqueue_alert(db, event_id="b", type="job.failing", payload={})
    deliverer = Deliverer(db, session, conf(url + "/hook", hook={"events": ["job.*"]}))
    await drain(deliverer, until=lambda: bool(state.received))
    await deliverer.run_once()
    assert state.ids() == ["b"]


async def test_alertmanager_format_fires_then_ends(db: Database, session: aiohttp.ClientSession,
                                                   receiver: tuple[AlertReceiver, str]) -> None:
    """Alertmanager gets /api/v2/alerts with labels; the resolved alert carries its endsAt."""
    state, url = receiver
    case = {"case_id": 3, "kind": "phone_not_locked", "subject": "dev-1", "severity": "warning",
            "expected": "Locked", "actual": "Enrolled", "first_seen_at": "2026-12-01T12:00:00+00:00"}
    await enqueue_alert(db, event_id="drift-3-opened", type="drift.opened",
                        payload=case | {"type": "drift.opened", "status": "open"})
    await enqueue_alert(db, event_id="drift-3-resolved", type="drift.resolved",
                        payload=case | {"type": "drift.resolved", "status": "resolved",
                                        "resolved_at": "2026-12-01T13:00:00+00:00"})
    settings = AlertSettings(hooks=[{"url": url, "format": "alertmanager", "name": "am"}],
                             poll_seconds=0.01)
    deliverer = Deliverer(db, session, settings)
    await drain(deliverer, until=lambda: len(state.received) == 2)
    assert {r.path for r in state.received} == {"/api/v2/alerts"}
    bodies = {r.body[0]["annotations"]["webhook_id"]: r.body[0] for r in state.received}
    fired, ended = bodies["drift-3-opened"], bodies["drift-3-resolved"]
    assert fired["labels"] == {"alertname": "syncd_phone_not_locked", "kind": "phone_not_locked",
                               "subject": "dev-1", "severity": "warning", "source": "syncd"}
    assert fired["startsAt"] == case["first_seen_at"]
    assert dt.datetime.fromisoformat(fired["endsAt"]) > dt.datetime.now(dt.UTC)
    assert ended["endsAt"] == "2026-12-01T13:00:00+00:00"


def test_unnamed_hooks_are_named_without_their_url() -> None:
    """A hook's name (stored and shown) never contains its URL, which may carry a token."""
    (hook,) = hooks_from(AlertSettings(hooks=[{"url": "https://h.example/t0ken", "secret": SECRET}]))
    assert hook.name.startswith("hook-") and "t0ken" not in hook.name



async def test_the_daemon_delivers_alerts_and_keeps_the_secret_out_of_logs_and_database(
        db: Database, make_settings: Any, receiver: tuple[AlertReceiver, str]) -> None:
    """Inside the app (as `syncd run`), a queued alert reaches the hook; its secret is stored nowhere."""
    from structlog.testing import capture_logs

    from syncd.app import create_app as create_syncd

    state, url = receiver
    settings = make_settings(alerts={"hooks": [{"url": url + "/hook", "secret": SECRET}],
                                     "poll_seconds": 0.05})
    await enqueue_alert(db, event_id="drift-5-opened", type="drift.opened", payload={"x": 1})
    app = create_syncd(settings)
    with capture_logs() as logs:
        async with serve(app):
            for _ in range(200):
                if state.received:
                    break
                await asyncio.sleep(0.05)
    assert state.ids() == ["drift-5-opened"] and state.received[0].verified
    assert SECRET not in repr(logs) and SECRET.removeprefix("whsec_") not in repr(logs)
    async with db.connection() as conn:
        dump = await conn.fetchval(
            "SELECT coalesce(string_agg(t::text, ' '), '') FROM ops.alert_deliveries t")
        dump += await conn.fetchval("SELECT string_agg(t::text, ' ') FROM ops.outbox t")
    assert SECRET.removeprefix("whsec_") not in dump


async def test_open_cases_are_re_sent_to_alertmanager_so_they_keep_firing(
        db: Database, session: aiohttp.ClientSession,
        receiver: tuple[AlertReceiver, str]) -> None:
    """Every open case with an opened alert is posted again with endsAt ahead; resolved ones not."""
    state, url = receiver
    async with db.connection() as conn:
        for subject, status in (("dev-1", "open"), ("dev-2", "resolved")):
            case_id = await conn.fetchval(
                "INSERT INTO ops.drift (kind, subject, severity, status, first_seen_at,"
                " last_seen_at) VALUES ('phone_not_locked', $1, 'warning', $2, now(), now())"
                " RETURNING id", subject, status)
            await enqueue_alert(conn, event_id=f"drift-{case_id}-opened", type="drift.opened",
                                payload={"type": "drift.opened", "kind": "phone_not_locked",
                                         "subject": subject, "status": "open"})
    settings = AlertSettings(hooks=[{"url": url, "format": "alertmanager", "name": "am"}])
    await Deliverer(db, session, settings).resend_firing()
    (posted,) = state.received
    assert [a["labels"]["subject"] for a in posted.body] == ["dev-1"]
    assert dt.datetime.fromisoformat(posted.body[0]["endsAt"]) > dt.datetime.now(dt.UTC)


async def test_housekeeping_forgets_old_finished_alerts_but_keeps_open_cases_alerts(
        db: Database) -> None:
    """Old delivered alerts are pruned; an open case's opened alert and pending ones are kept."""
    from syncd.db import ops

    async with db.connection() as conn:
        case_id = await conn.fetchval(
            "INSERT INTO ops.drift (kind, subject, severity, first_seen_at, last_seen_at)"
            " VALUES ('phone_not_locked', 'd', 'warning', now(), now()) RETURNING id")
        for event_id in ("old-done", f"drift-{case_id}-opened", "old-pending"):
            await enqueue_alert(conn, event_id=event_id, type="drift.opened", payload={})
        await queue.fan_out(db, [("ops", "%")], max_age=dt.timedelta(days=1))
        await conn.execute("UPDATE ops.alert_deliveries d SET status = 'delivered' FROM ops.outbox o"
                           " WHERE o.id = d.outbox_id AND o.event_id <> 'old-pending'")
        await conn.execute("UPDATE ops.outbox SET created_at = now() - interval '40 days'")
    assert await ops.prune(db, "outbox_prune", 30.0) == 1
    async with db.connection() as conn:
        left = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM ops.outbox")}
    assert left == {f"drift-{case_id}-opened", "old-pending"}


def test_a_lease_shorter_than_a_hook_timeout_is_refused() -> None:
    """lease_seconds must outlast every hook's timeout, or a slow send would be sent twice."""
    with pytest.raises(ValueError, match="lease_seconds"):
        AlertSettings(hooks=[{"url": "http://x/", "secret": SECRET, "timeout_seconds": 90}])


async def test_drift_open_gauge_counts_open_unsuppressed_cases(
        db: Database, session: aiohttp.ClientSession) -> None:
    """syncd_drift_open{kind,severity} counts open cases, leaving out suppressed and resolved ones."""
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO ops.drift (kind, subject, severity, status, first_seen_at, last_seen_at,"
            " suppressed_until) VALUES ($1, $2, $3, $4, now(), now(), $5)",
            [("phone_locked_out", "a", "critical", "open", None),
             ("phone_locked_out", "b", "critical", "open", None),
             ("phone_locked_out", "c", "critical", "open",
              dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
             ("terminal_missing", "t", "warning", "resolved", None)])
    metrics = Metrics()
    await Deliverer(db, session, AlertSettings(), metrics=metrics).refresh_gauges()
    text = metrics.render().decode()
    assert 'syncd_drift_open{kind="phone_locked_out",severity="critical"} 2.0' in text
    assert 'kind="terminal_missing"' not in text

"""Alert fan-out across replicas: per (alert, hook), whichever replica sees an alert first; a bad
hook never stops the deliverer (issue 19, item 2)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.alerts.deliverer import Deliverer, Hook
from syncd.db.actions import enqueue_alert
from syncd.db.pool import Database
from syncd.devtools.simulators.alert_receiver import AlertReceiver, create_app
from syncd.devtools.simulators.common import serve
from syncd.settings.core import Settings
from syncd.settings.drift import AlertSettings
from tests.waiting import wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "c2VjcmV0LWJlaW5nLXJldGlyZWQtbm93"


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[tuple[AlertReceiver, str], tuple[AlertReceiver, str]]]:
    """Two running receivers (each with its own secret) and their hook URLs."""
    first, second = AlertReceiver(SECRET), AlertReceiver(OTHER_SECRET)
    async with serve(create_app(first)) as one, serve(create_app(second)) as two:
        yield (first, one.url + "/hook"), (second, two.url + "/hook")


def conf(*hooks: dict[str, Any], **extra: Any) -> AlertSettings:
    """Alert settings with fast retries and polling."""
    return AlertSettings(hooks=list(hooks), retry_base_seconds=0.01, retry_max_seconds=0.05,
                         poll_seconds=0.01, **extra)


async def drain(*deliverers: Deliverer, until: Callable[[], bool], seconds: float = 20) -> None:
    """Run the deliverers' polls until `until()` holds, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.gather(*(d.run_once() for d in deliverers))
        await asyncio.sleep(0.01)


async def queue_cases(db: Database, count: int, start: int = 1) -> list[str]:
    """Queue `count` drift.opened alerts as reconcile would; return their webhook ids."""
    ids = [f"drift-{n}-opened" for n in range(start, start + count)]
    for event_id in ids:
        await enqueue_alert(db, event_id=event_id, type="drift.opened",
                            payload={"type": "drift.opened", "case_id": event_id})
    return ids


async def deliveries(db: Database) -> list[tuple[str, str]]:
    """(webhook id, hook) of every delivery row."""
    async with db.connection() as conn:
        return [(r["event_id"], r["hook"]) for r in await conn.fetch(
            "SELECT o.event_id, d.hook FROM ops.alert_deliveries d"
            " JOIN ops.outbox o ON o.id = d.outbox_id ORDER BY d.id")]


def delivered_once(receiver: AlertReceiver, ids: list[str]) -> bool:
    """True when `receiver` accepted exactly `ids`, each once, every signature valid."""
    counts = collections.Counter(receiver.ids())
    return set(counts) == set(ids) and set(counts.values()) == {1} and \
        all(r.verified for r in receiver.received)


async def test_a_hookless_replica_fans_out_nothing_and_the_replica_with_the_hook_delivers_all(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """Replica B (no hooks) polls first over 6 queued alerts and makes no delivery; replica A,
    started after it with the hook, delivers all 6, signed, each with its own webhook-id."""
    (state, url), _ = receivers
    ids = await queue_cases(db, 6)
    hookless = Deliverer(db, session, conf())
    for _ in range(3):
        assert await hookless.run_once() == 0
    assert await deliveries(db) == []
    with_hook = Deliverer(db, session, conf({"url": url, "secret": SECRET, "name": "ops"}))
    await drain(hookless, with_hook, until=lambda: len(state.received) >= 6)
    await asyncio.gather(hookless.run_once(), with_hook.run_once())
    assert delivered_once(state, ids)


async def test_alerts_queued_while_two_daemons_run_reach_the_hook_whichever_fans_out(
        db: Database, make_settings: Callable[..., Settings],
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """Two `syncd run` apps on one database, one without hooks and one with: 40 alerts queued
    while both run all arrive at the hook, once each, signatures valid."""
    from syncd.app import create_app as create_syncd

    (state, url), _ = receivers
    hookless = create_syncd(make_settings(alerts={"poll_seconds": 0.02}))
    with_hook = create_syncd(make_settings(alerts={
        "hooks": [{"url": url, "secret": SECRET, "name": "ops"}], "poll_seconds": 0.02}))
    async with serve(hookless), serve(with_hook):
        ids = await queue_cases(db, 40)
        await wait_for(lambda: len(state.received) >= 40, timeout=30, what="40 alerts received")
    assert delivered_once(state, ids)
    assert {hook for _, hook in await deliveries(db)} == {"ops"}


async def test_replicas_on_different_configs_each_deliver_to_the_hooks_they_have(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """Replica A has hook `ops`, replica B hook `oncall`: every alert reaches both receivers once,
    and each replica made deliveries only for its own hook."""
    (first, first_url), (second, second_url) = receivers
    ids = await queue_cases(db, 10)
    a = Deliverer(db, session, conf({"url": first_url, "secret": SECRET, "name": "ops"}))
    b = Deliverer(db, session, conf({"url": second_url, "secret": OTHER_SECRET, "name": "oncall"}))
    await a.run_once()  # A alone first: it must leave B's share to B
    assert {hook for _, hook in await deliveries(db)} == {"ops"}
    await drain(a, b, until=lambda: len(first.received) >= 10 and len(second.received) >= 10)
    await asyncio.gather(a.run_once(), b.run_once())
    assert delivered_once(first, ids) and delivered_once(second, ids)
    assert sorted(await deliveries(db)) == sorted((i, h) for i in ids for h in ("ops", "oncall"))


async def test_a_hook_added_later_gets_the_alerts_younger_than_max_age(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """After `ops` delivered 5 alerts, a restart with `oncall` added back-fills `oncall` with
    the 4 alerts younger than alerts.max_age_hours (not the 30-hour-old one) and sends `ops`
    nothing twice."""
    (first, first_url), (second, second_url) = receivers
    ids = await queue_cases(db, 5)
    async with db.connection() as conn:
        await conn.execute("UPDATE ops.outbox SET created_at = now() - interval '30 hours'"
                           " WHERE event_id = $1", ids[0])
    ops_hook = {"url": first_url, "secret": SECRET, "name": "ops"}
    before = Deliverer(db, session, conf(ops_hook, max_age_hours=48))
    await drain(before, until=lambda: len(first.received) >= 5)
    after = Deliverer(db, session, conf(
        ops_hook, {"url": second_url, "secret": OTHER_SECRET, "name": "oncall"}))
    await drain(after, until=lambda: len(second.received) >= 4)
    await after.run_once()
    assert delivered_once(first, ids) and delivered_once(second, ids[1:])


async def test_an_alert_committed_after_a_later_one_was_seen_is_still_fanned_out(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """Outbox ids are handed out before commit: an alert whose transaction commits after a later
    alert was fanned out is found by the next sweep of the window and delivered."""
    (state, url), _ = receivers
    deliverer = Deliverer(db, session, conf({"url": url, "secret": SECRET, "name": "ops"}),
                          sweep_seconds=0.2)
    async with db.transaction() as slow:
        await enqueue_alert(slow, event_id="drift-1-opened", type="drift.opened",
                            payload={"type": "drift.opened"})
        await queue_cases(db, 1, start=2)  # a later id, committed first
        await drain(deliverer, until=lambda: len(state.received) >= 1)
    await drain(deliverer, until=lambda: len(state.received) >= 2)
    assert delivered_once(state, ["drift-1-opened", "drift-2-opened"])


async def test_a_hook_that_cannot_be_signed_for_is_recorded_and_the_others_still_get_alerts(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """A hook whose delivery raises (a secret that is not base64, as an old config could hold)
    gets last_error on its deliveries and one error log line; the deliverer keeps running and
    the good hook receives all 14 alerts."""
    (state, url), (_, other_url) = receivers
    good = Hook("good", url, "standard-webhooks", (SECRET,), ("*",), 5.0)
    bad = Hook("bad", other_url, "standard-webhooks", ("whsec_abc!def",), ("*",), 5.0)
    settings = conf()
    deliverer = Deliverer(db, session, settings, hooks=[good, bad])
    ids = await queue_cases(db, 3)
    with capture_logs() as logs:
        task = asyncio.create_task(deliverer.run())
        try:
            ids += await queue_cases(db, 11, start=4)
            await wait_for(lambda: len(state.received) >= 14 or task.done(), timeout=30,
                           what="14 alerts at the good hook")
            assert not task.done(), "the deliverer stopped"

            async def bad_ones_recorded() -> bool:
                async with db.connection() as conn:
                    return bool(await conn.fetchval(
                        "SELECT count(*) = 14 FROM ops.alert_deliveries "
                        "WHERE hook = 'bad' AND last_error IS NOT NULL"))

            await wait_for(bad_ones_recorded, what="an error on each of the bad hook's deliveries")
            assert not task.done(), "the deliverer stopped"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert delivered_once(state, ids)
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, attempts, last_error FROM ops.alert_deliveries"
                                " WHERE hook = 'bad'")
    assert len(rows) == 14
    assert all(r["status"] == "pending" and r["attempts"] >= 1 and
               r["last_error"].startswith("ValueError: is not valid base64") for r in rows)
    errors = [e for e in logs if e["event"] == "alerts.delivery_error"]
    assert len(errors) == 1 and errors[0]["hook"] == "bad"
    assert "abc!def" not in repr(logs) + repr([r["last_error"] for r in rows])


async def test_a_replica_without_hooks_leaves_the_outbox_to_a_later_one_within_max_age(
        db: Database, session: aiohttp.ClientSession,
        receivers: tuple[tuple[AlertReceiver, str], ...]) -> None:
    """An alert a hookless replica polled over an hour ago is still delivered by a replica that
    starts with a hook later, while it is younger than max_age_hours."""
    (state, url), _ = receivers
    ids = await queue_cases(db, 2)
    await Deliverer(db, session, conf()).run_once()
    async with db.connection() as conn:
        await conn.execute("UPDATE ops.outbox SET created_at = created_at - $1::interval",
                           dt.timedelta(hours=1))
    late = Deliverer(db, session, conf({"url": url, "secret": SECRET, "name": "ops"}))
    await drain(late, until=lambda: len(state.received) >= 2)
    assert delivered_once(state, ids)

"""What an operator does with alert deliveries: send dead ones again, acknowledge them, and test
a hook. Each act is one row of the hash-chained action log, written in the same transaction as
the change it records.

Redelivery puts a dead or stopped delivery back in the queue: pending, due at once, attempts
from zero, and the retry window (`alerts.max_age_hours`) counting from now. The deliverer of
any replica that has the hook then sends it as it sends every alert, with the alert's own
`webhook-id`, so a receiver that got it after all dedupes it. An acknowledged dead delivery stays
dead (and in `report.alert_deliveries`) but is no longer a problem in `syncd status`; its state is
`acknowledged` in status, `/metrics` and `syncd alerts list`.

A test sends a `syncd.test` event to one hook straight away (not through the outbox), through
the same request builder, signing and POST as real alerts, and reports the receiver's answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog

from syncd.alerts.deliverer import Hook, post, request_for, scrub
from syncd.db import alerts as queue
from syncd.db.actions import record_action
from syncd.db.pool import Database

log = structlog.get_logger(__name__)
TEST_TYPE = "syncd.test"
TEST_FIRING_FOR = dt.timedelta(minutes=5)  # an Alertmanager test alert ends by itself


@dataclasses.dataclass(frozen=True)
class Picked:
    """The deliveries an operator named (or `--dead` selected), split by what can be done."""

    ids: list[int]  # in a state the act applies to
    other: dict[int, str]  # id -> its state, which the act leaves alone
    unknown: list[int]


async def pick(db: Database, ids: Sequence[int] | None, *, hook: str | None,
               wanted: Sequence[str]) -> Picked:
    """The named deliveries (to `hook`, if given) whose state is among `wanted`; without ids,
    every dead, unacknowledged one (to `hook`)."""
    if not ids:
        return Picked(await queue.dead(db, hook), {}, [])
    found = await queue.states(db, ids)
    asked = list(dict.fromkeys(ids))
    fits = [i for i in asked if i in found and found[i][1] in wanted
            and (hook is None or found[i][0] == hook)]
    other = {i: found[i][1] if hook is None or found[i][0] == hook else f"to hook {found[i][0]}"
             for i in asked if i in found and i not in fits}
    return Picked(fits, other, [i for i in asked if i not in found])


@dataclasses.dataclass(frozen=True)
class Done:
    """What a redelivery or acknowledgement changed: {id: hook}, and the action log row."""

    changed: dict[int, str]
    seq: int | None  # None when nothing changed (nothing is logged then)

    def by_hook(self) -> dict[str, int]:
        """How many deliveries of each hook were changed."""
        counts: dict[str, int] = {}
        for hook in self.changed.values():
            counts[hook] = counts.get(hook, 0) + 1
        return dict(sorted(counts.items()))


async def redeliver(db: Database, ids: Sequence[int], *, actor: str,
                    selection: dict[str, Any]) -> Done:
    """Put the dead or stopped deliveries among `ids` back in the queue, logged as
    `alerts.redeliver` in the same transaction."""
    async with db.transaction() as conn:
        found = await queue.redeliver(conn, ids)
        if not found:
            return Done({}, None)
        done = Done({i: hook for i, (hook, _) in found.items()}, None)
        was: dict[str, int] = {}
        for _, state in found.values():
            was[state] = was.get(state, 0) + 1
        seq = await record_action(conn, actor=actor, action="alerts.redeliver",
                                  subject=_subject(done), outcome="ok", detail={
                                      **selection, "redelivered": len(found),
                                      "by_hook": done.by_hook(), "from": was,
                                      "ids": sorted(found)})
    log.info("alerts.redelivered", count=len(found), by_hook=done.by_hook(), actor=actor, seq=seq)
    return dataclasses.replace(done, seq=seq)


async def acknowledge(db: Database, ids: Sequence[int], *, actor: str, reason: str,
                      selection: dict[str, Any]) -> Done:
    """Acknowledge the dead deliveries among `ids`, logged as `alerts.ack` in the same
    transaction."""
    async with db.transaction() as conn:
        found = await queue.acknowledge(conn, ids, actor, reason)
        if not found:
            return Done({}, None)
        done = Done(found, None)
        seq = await record_action(conn, actor=actor, action="alerts.ack", subject=_subject(done),
                                  outcome="ok", detail={
                                      **selection, "reason": reason, "acknowledged": len(found),
                                      "by_hook": done.by_hook(), "ids": sorted(found)})
    log.info("alerts.acknowledged", count=len(found), by_hook=done.by_hook(), actor=actor, seq=seq)
    return dataclasses.replace(done, seq=seq)


def _subject(done: Done) -> str:
    """The action log subject: the hook, or `alerts` when several hooks are concerned."""
    hooks = done.by_hook()
    return f"hook:{next(iter(hooks))}" if len(hooks) == 1 else "alerts"


@dataclasses.dataclass(frozen=True)
class Tested:
    """How a test event fared: the receiver's HTTP status (None: not reached), the start of
    its answer, the transport error if any; the action log row."""

    hook: str
    webhook_id: str
    status: int | None
    excerpt: str
    error: str
    seq: int

    @property
    def ok(self) -> bool:
        """True when the receiver accepted the event (2xx)."""
        return self.status is not None and 200 <= self.status < 300


def test_payload(hook: str, actor: str, now: float) -> dict[str, Any]:
    """The body of a `syncd.test` event: the fields of a real alert, saying it is a test."""
    at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
    return {"type": TEST_TYPE, "case_id": None, "kind": "test", "subject": hook,
            "provider": None, "severity": "info", "expected": "delivered",
            "actual": "sent by syncd alerts test", "status": "test",
            "detail": {"requested_by": actor}, "plan": None, "first_seen_at": at,
            "last_seen_at": at, "resolved_at": None, "timestamp": at}


async def send_test(db: Database, session: aiohttp.ClientSession, hook: Hook, *,
                    actor: str) -> Tested:
    """Send a signed `syncd.test` event to `hook` now; log it as `alerts.test`."""
    now = time.time()
    webhook_id = f"test-{uuid.uuid4().hex}"
    request = request_for(hook, webhook_id, test_payload(hook.name, actor, now), now,
                          TEST_FIRING_FOR)
    sent = await post(session, request, hook.timeout)
    error = scrub([hook], sent.error)
    tested = Tested(hook.name, webhook_id, sent.status, scrub([hook], sent.excerpt), error, 0)
    seq = await record_action(db, actor=actor, action="alerts.test", subject=f"hook:{hook.name}",
                              outcome="ok" if tested.ok else "failed", detail={
                                  "webhook_id": webhook_id, "format": hook.format,
                                  "status": sent.status, "error": error or None})
    log.info("alerts.tested", hook=hook.name, webhook_id=webhook_id, status=sent.status,
             error=error or None, actor=actor)
    return dataclasses.replace(tested, seq=seq)

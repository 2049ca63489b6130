"""The alert deliverer: fans outbox rows out to hooks, leases deliveries, POSTs, retries.

Fan-out is per (alert, hook): each replica makes the deliveries for the hooks it has, and only
those, for every alert younger than `alerts.max_age_hours` (an older one would be dead-lettered
at its first failure). An outbox row is never "taken": a replica with other hooks, or a hook
added later, still finds it, and `UNIQUE (outbox_id, hook)` keeps it to one delivery per hook
whichever replicas fan out. Each poll looks at the alerts queued since the last one; every
`sweep_seconds` the whole window is looked at again, which catches an alert whose transaction
committed after a later one was seen (outbox ids are handed out before commit). A replica
without hooks fans out nothing.

Delivery is at least once: a deliverer that dies between claiming and recording leaves its lease
to expire and the alert is sent again with the same `webhook-id`, which receivers dedupe on.
Several daemons on one database share the work through `FOR UPDATE SKIP LOCKED`. Failures retry
with full-jitter exponential backoff (the vendor clients' `RetryPolicy`), honouring Retry-After,
until the alert is `alerts.max_age_hours` old: then the delivery is dead-lettered (kept, counted
in `syncd status` and `/metrics`). A 410 Gone stops that delivery at once. An operator may send a
dead or stopped delivery again (`syncd alerts redeliver`, see alerts/operator.py): the window
then counts from the redelivery, and the webhook-id stays the alert's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiohttp
import structlog

from syncd.alerts import formats
from syncd.db import alerts as queue
from syncd.db import drift
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.metrics import Metrics
from syncd.settings.checks import WEBHOOK_SECRET_PREFIX
from syncd.settings.drift import AlertSettings
from syncd.transition import Transition
from syncd.vendors.pacing import RetryPolicy, parse_retry_after

log = structlog.get_logger(__name__)
GAUGE_EVERY = 15.0  # seconds between refreshes of the drift and delivery gauges
# How one POST ends, as syncd_alert_attempts_total counts it (error: syncd could not send it).
OUTCOMES = ("delivered", "retry", "stopped", "dead", "error")
SWEEP_EVERY = 60.0  # seconds between fan-outs over the whole max_age window
FAN_OUT_BATCH = 500


@dataclasses.dataclass(frozen=True)
class Hook:
    """One configured hook, resolved: a stable name, the secrets in clear, the type patterns."""

    name: str
    url: str
    format: str
    secrets: tuple[str, ...]
    events: tuple[str, ...]
    timeout: float

    def patterns(self) -> list[str]:
        """The `events` filter as SQL LIKE patterns (`*` matches anything)."""
        escaped = (e.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                   for e in self.events)
        return [e.replace("*", "%") for e in escaped]


def hooks_from(conf: AlertSettings) -> list[Hook]:
    """The configured hooks; an unnamed hook is named after a hash of its URL (never the URL)."""
    found = []
    for hook in conf.hooks:
        url = str(hook.url)
        secrets = ([hook.secret] if hook.secret else []) + list(hook.secrets)
        found.append(Hook(hook.hook_name, url, hook.format, tuple(s.get_secret_value() for s in secrets),
                          tuple(hook.events), hook.timeout_seconds))
    return found


@dataclasses.dataclass(frozen=True)
class Sent:
    """How one POST ended: an HTTP status, or a transport error; Retry-After if given; the
    start of the receiver's answer (for `syncd alerts test`)."""

    status: int | None
    retry_after: float | None = None
    error: str = ""
    excerpt: str = ""


EXCERPT_BYTES = 200


def request_for(hook: Hook, event_id: str, payload: dict[str, Any], now: float,
                firing_for: dt.timedelta) -> formats.Request:
    """What goes on the wire for one alert to `hook`, in its format (signed when Standard
    Webhooks); `now` is the Unix time of sending."""
    if hook.format == "alertmanager":  # an escalation ends the old-severity alert too
        return formats.alertmanager(hook.url, formats.alertmanager_alerts(
            event_id, payload, dt.datetime.fromtimestamp(now, dt.UTC), firing_for))
    return formats.standard_webhook(hook.url, hook.secrets, event_id, payload, now)


async def post(session: aiohttp.ClientSession, request: formats.Request, timeout: float) -> Sent:
    """POST once; transport errors become a `Sent` without a status (the edge of aiohttp)."""
    try:
        async with session.post(request.url, data=request.body, headers=request.headers,
                                timeout=aiohttp.ClientTimeout(total=timeout),
                                allow_redirects=False) as reply:
            answer = await reply.read()
            return Sent(reply.status, parse_retry_after(reply.headers.get("Retry-After")),
                        excerpt=answer[:EXCERPT_BYTES].decode("utf-8", "replace"))
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return Sent(None, None, f"{type(err).__name__}: {err}"[:300])


def scrub(hooks: Iterable[Hook], text: str) -> str:
    """`text` without any hook's URL or secret (an exception message may quote them)."""
    for hook in hooks:
        for secret in (hook.url, *hook.secrets,
                       *(s.removeprefix(WEBHOOK_SECRET_PREFIX) for s in hook.secrets)):
            if secret:
                text = text.replace(secret, "***")
    return text


class Deliverer:
    """Delivers queued alerts to the configured hooks (see the module docstring)."""

    def __init__(self, db: Database, session: aiohttp.ClientSession, conf: AlertSettings, *,
                 hooks: Sequence[Hook] | None = None, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 firing_for: dt.timedelta = dt.timedelta(minutes=15),
                 sweep_seconds: float = SWEEP_EVERY) -> None:
        self.db, self.session, self.conf, self.metrics, self.clock = db, session, conf, metrics, clock
        self.hooks = {h.name: h for h in (hooks if hooks is not None else hooks_from(conf))}
        self.retry = RetryPolicy(base_delay=conf.retry_base_seconds,
                                 max_delay=conf.retry_max_seconds)
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self.firing_for = firing_for
        self.sweep_seconds = sweep_seconds
        self._through = 0  # every (alert, hook of ours) pair up to this outbox id exists
        self._swept_at: float | None = None
        self._failing: set[str] = set()
        if metrics is not None:  # every hook's outcomes from 0, so a rate sees the first one
            for name in self.hooks:
                for outcome in OUTCOMES:
                    metrics.alerts_sent.labels(hook=name, outcome=outcome)
        self._broken: dict[str, Transition] = {}  # hook -> unexpected errors while delivering
        self._crashing = Transition(log, "alerts.loop_error", "alerts.loop_recovered",
                                    level="error")

    async def fan_out(self) -> int:
        """Make the missing deliveries to this replica's hooks; return how many were made.

        Alerts queued since the last call are looked at every time; the whole `max_age_hours`
        window every `sweep_seconds` (and on the first call, which back-fills a new hook).
        """
        routes = [(h.name, p) for h in self.hooks.values() for p in h.patterns()]
        if not routes:
            return 0  # no hooks here: other replicas' hooks are theirs to fan out
        now = time.monotonic()
        sweep = self._swept_at is None or now - self._swept_at >= self.sweep_seconds
        after, made = (0 if sweep else self._through), 0
        max_age = dt.timedelta(hours=self.conf.max_age_hours)
        while True:
            found = await queue.fan_out(self.db, routes, after=after, max_age=max_age,
                                        limit=FAN_OUT_BATCH)
            made += found.deliveries
            after = found.through
            if found.missing < FAN_OUT_BATCH:
                break
        self._through = max(self._through, after)
        if sweep:
            self._swept_at = now
        return made

    async def run_once(self) -> int:
        """Fan out new alerts, then send every due delivery once; return how many were sent."""
        if not self.hooks:
            return 0
        await self.fan_out()
        due = await queue.claim(self.db, list(self.hooks),
                                dt.timedelta(seconds=self.conf.lease_seconds))
        await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def run(self) -> None:
        """Deliver until cancelled; refresh gauges and re-send firing Alertmanager alerts.

        No error ends the loop: database trouble is logged when it starts and ends, anything
        unforeseen is logged with its trace when it starts, and the next poll tries again.
        """
        down = False
        last_gauges = last_resend = 0.0
        while True:
            try:
                sent = await self.run_once()
                now = time.monotonic()
                if now - last_gauges >= GAUGE_EVERY:
                    last_gauges = now
                    await self.refresh_gauges()
                if now - last_resend >= self.firing_for.total_seconds() / 3:
                    last_resend = now
                    await self.resend_firing()
                if down:
                    down = False
                    log.info("alerts.database_recovered")
                self._crashing.ok()
            except DatabaseUnavailable as err:
                sent = 0
                if not down:
                    down = True
                    log.warning("alerts.database_unavailable", error=str(err))
            except SyncdError as err:
                sent = 0
                log.warning("alerts.error", error=str(err))
            except Exception as err:  # the deliverer outlives any one bug
                sent = 0
                self._crashing.fail(error=self._scrub(f"{type(err).__name__}: {err}"),
                                    exc_info=True)
            if not sent:
                await asyncio.sleep(self.conf.poll_seconds)

    def _request(self, hook: Hook, delivery: queue.Delivery) -> formats.Request:
        return request_for(hook, delivery.event_id, delivery.payload, self.clock(),
                           self.firing_for)

    async def _deliver(self, delivery: queue.Delivery) -> None:
        """Send one delivery and record how it went; an unforeseen error is recorded on it."""
        hook = self.hooks[delivery.hook]
        try:
            await self._send(hook, delivery)
        except SyncdError:
            raise  # database trouble: the lease expires and the alert is sent again
        except Exception as err:  # one bad hook must not stop the others
            error = self._scrub(f"{type(err).__name__}: {err}")[:300]
            broken = self._broken.setdefault(hook.name, Transition(
                log, "alerts.delivery_error", "alerts.delivery_error_cleared", level="error"))
            broken.fail(hook=hook.name, webhook_id=delivery.event_id, error=error, exc_info=True)
            delay = self.retry.backoff(delivery.attempts - 1, self.rng)
            if await queue.retry(self.db, delivery.id, delay, None, error,
                                 dt.timedelta(hours=self.conf.max_age_hours)) == "dead":
                log.warning("alerts.dead_letter", hook=hook.name, webhook_id=delivery.event_id,
                            attempts=delivery.attempts, error=error)
            if self.metrics is not None:
                self.metrics.alerts_sent.labels(hook=hook.name, outcome="error").inc()
        else:
            if hook.name in self._broken:
                self._broken.pop(hook.name).ok(hook=hook.name)

    def _scrub(self, text: str) -> str:
        return scrub(self.hooks.values(), text)

    async def _send(self, hook: Hook, delivery: queue.Delivery) -> None:
        sent = await self._post(self._request(hook, delivery), hook.timeout)
        outcome = "retry"
        if sent.status is not None and 200 <= sent.status < 300:
            outcome = "delivered"
            await queue.delivered(self.db, delivery.id, sent.status)
        elif sent.status == 410:
            outcome = "stopped"
            await queue.stopped(self.db, delivery.id, 410, "410 Gone: the receiver wants no more")
            log.warning("alerts.stopped", hook=hook.name, webhook_id=delivery.event_id)
        else:
            delay = sent.retry_after if sent.retry_after is not None else \
                self.retry.backoff(delivery.attempts - 1, self.rng)
            error = sent.error or f"HTTP {sent.status}"
            max_age = dt.timedelta(hours=self.conf.max_age_hours)
            if await queue.retry(self.db, delivery.id, delay, sent.status, error,
                                 max_age) == "dead":
                outcome = "dead"
                log.warning("alerts.dead_letter", hook=hook.name, webhook_id=delivery.event_id,
                            attempts=delivery.attempts, error=error)
        self._transition(hook.name, outcome)
        if self.metrics is not None:
            self.metrics.alerts_sent.labels(hook=hook.name, outcome=outcome).inc()

    def _transition(self, hook: str, outcome: str) -> None:
        # Log when a hook starts failing and when it recovers, not every failed attempt.
        if outcome == "retry" and hook not in self._failing:
            self._failing.add(hook)
            log.warning("alerts.hook_failing", hook=hook)
        elif outcome == "delivered" and hook in self._failing:
            self._failing.discard(hook)
            log.info("alerts.hook_recovered", hook=hook)

    async def _post(self, request: formats.Request, timeout: float) -> Sent:
        return await post(self.session, request, timeout)

    async def refresh_gauges(self) -> None:
        """Set syncd_drift_open{kind,severity} and syncd_alert_deliveries{hook,status}."""
        if self.metrics is None:
            return
        counts = await drift.open_counts(self.db)
        self.metrics.drift_open.clear()
        for (kind, severity), cases in counts.items():
            self.metrics.drift_open.labels(kind=kind, severity=severity).set(cases)
        deliveries = await queue.counts(self.db)
        self.metrics.alert_deliveries.clear()
        for (hook, status), count in deliveries.items():
            self.metrics.alert_deliveries.labels(hook=hook, status=status).set(count)

    async def resend_firing(self) -> None:
        """Re-send open cases to Alertmanager hooks so they keep firing (best effort)."""
        targets = [h for h in self.hooks.values() if h.format == "alertmanager"]
        if not targets:
            return
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        alerts = [formats.alertmanager_alert(event_id, payload, now, self.firing_for)
                  for event_id, payload in await queue.open_alerts(self.db)]
        for hook in targets:
            if alerts:
                await self._post(formats.alertmanager(hook.url, alerts), hook.timeout)

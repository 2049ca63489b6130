"""The alert deliverer: fans outbox rows out to hooks, leases deliveries, POSTs, retries.

Delivery is at least once: a deliverer that dies between claiming and recording leaves its lease
to expire and the alert is sent again with the same `webhook-id`, which receivers dedupe on.
Several daemons on one database share the work through `FOR UPDATE SKIP LOCKED`. Failures retry
with full-jitter exponential backoff (the vendor clients' `RetryPolicy`), honouring Retry-After,
until the alert is `alerts.max_age_hours` old: then the delivery is dead-lettered (kept, counted
in `syncd status` and `/metrics`). A 410 Gone stops that delivery at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Sequence

import aiohttp
import structlog

from syncd.alerts import formats
from syncd.db import alerts as queue
from syncd.db import drift
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.metrics import Metrics
from syncd.settings import AlertSettings
from syncd.vendors.http import RetryPolicy, parse_retry_after

log = structlog.get_logger(__name__)
GAUGE_EVERY = 15.0  # seconds between refreshes of the drift and delivery gauges


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
    """How one POST ended: an HTTP status, or a transport error; Retry-After if given."""

    status: int | None
    retry_after: float | None = None
    error: str = ""


class Deliverer:
    """Delivers queued alerts to the configured hooks (see the module docstring)."""

    def __init__(self, db: Database, session: aiohttp.ClientSession, conf: AlertSettings, *,
                 hooks: Sequence[Hook] | None = None, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 firing_for: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        self.db, self.session, self.conf, self.metrics, self.clock = db, session, conf, metrics, clock
        self.hooks = {h.name: h for h in (hooks if hooks is not None else hooks_from(conf))}
        self.retry = RetryPolicy(base_delay=conf.retry_base_seconds,
                                 max_delay=conf.retry_max_seconds)
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self.firing_for = firing_for
        self._failing: set[str] = set()

    async def run_once(self) -> int:
        """Fan out new alerts, then send every due delivery once; return how many were sent."""
        routes = [(h.name, p) for h in self.hooks.values() for p in h.patterns()]
        await queue.fan_out(self.db, routes)
        if not self.hooks:
            return 0
        due = await queue.claim(self.db, list(self.hooks),
                                dt.timedelta(seconds=self.conf.lease_seconds))
        await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def run(self) -> None:
        """Deliver until cancelled; refresh gauges and re-send firing Alertmanager alerts."""
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
            except DatabaseUnavailable as err:
                sent = 0
                if not down:
                    down = True
                    log.warning("alerts.database_unavailable", error=str(err))
            except SyncdError as err:
                sent = 0
                log.warning("alerts.error", error=str(err))
            if not sent:
                await asyncio.sleep(self.conf.poll_seconds)

    def _request(self, hook: Hook, delivery: queue.Delivery) -> formats.Request:
        if hook.format == "alertmanager":
            now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
            alert = formats.alertmanager_alert(delivery.event_id, delivery.payload, now,
                                               self.firing_for)
            return formats.alertmanager(hook.url, [alert])
        return formats.standard_webhook(hook.url, hook.secrets, delivery.event_id,
                                        delivery.payload, self.clock())

    async def _deliver(self, delivery: queue.Delivery) -> None:
        hook = self.hooks[delivery.hook]
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
        """POST once; transport errors become a `Sent` without a status (the edge of aiohttp)."""
        try:
            async with self.session.post(request.url, data=request.body, headers=request.headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout),
                                         allow_redirects=False) as reply:
                await reply.read()
                return Sent(reply.status, parse_retry_after(reply.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            return Sent(None, None, f"{type(err).__name__}: {err}"[:300])

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

"""Prometheus metrics, in a registry owned by the app (no module-level globals).

Gauges that describe the database (inbox backlog, last successes, subscription state) are
refreshed from it when /metrics is scraped, so every replica reports the same truth.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

import syncd

# No `*_created` series: they double every counter and histogram and nobody graphs them.
# (prometheus_client keeps this switch process-wide.)
disable_created_metrics()  # type: ignore[no-untyped-call]

SUBSCRIPTION_STATES = ("registered", "failed", "deleted", "none")


# HTTP methods counted under their own name; any other token a client sends counts as "other",
# so a scanner cannot grow the label set.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric syncd exports, registered in one registry per process."""

    def __init__(self) -> None:
        # Labelled children of the per-request metrics, looked up once per label set:
        # prometheus_client's labels() validates and locks on every call.
        self._http_counted: dict[tuple[str, str, int], Counter] = {}
        self._http_timed: dict[str, Histogram] = {}
        self._events: dict[tuple[str, str], Counter] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge("syncd_build_info", "Always 1; the labels say what is running",
                                ["version", "python"], registry=r)
        self.build_info.labels(version=syncd.__version__,
                               python=platform.python_version()).set(1)
        self.http_requests = Counter("syncd_http_requests_total", "HTTP requests served",
                                     ["route", "method", "status"], registry=r)
        self.http_seconds = Histogram("syncd_http_request_duration_seconds",
                                      "HTTP request latency", ["route"], registry=r)
        self.job_runs = Counter("syncd_job_runs_total", "Job runs by outcome",
                                ["job", "status"], registry=r)
        self.job_seconds = Histogram("syncd_job_run_duration_seconds", "Job run duration", ["job"],
                                     buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600), registry=r)
        self.job_last_success = Gauge(
            "syncd_job_last_success_timestamp_seconds",
            "Unix time the job last finished successfully (any replica)", ["job"], registry=r)
        self.db_up = Gauge("syncd_database_up", "1 when the last database probe succeeded",
                           registry=r)
        self.events = Counter("syncd_events_total", "Pushed vendor events by outcome",
                              ["source", "outcome"], registry=r)
        self.drift_open = Gauge("syncd_drift_open", "Open, unsuppressed drift cases",
                                ["kind", "severity"], registry=r)
        self.alert_deliveries = Gauge("syncd_alert_deliveries", "Alert deliveries by status "
                                      "(dead: gave up, kept)", ["hook", "status"], registry=r)
        self.alerts_sent = Counter("syncd_alert_attempts_total", "Alert POSTs by outcome",
                                   ["hook", "outcome"], registry=r)
        self.inbox_pending = Gauge("syncd_inbox_pending_events",
                                   "Pushed events waiting to be processed", registry=r)
        self.inbox_oldest = Gauge("syncd_inbox_oldest_pending_age_seconds",
                                  "Age of the oldest pending pushed event (0 when none)",
                                  registry=r)
        self.subscription = Gauge(
            "syncd_subscription_state",
            "1 for the webhook subscription's current state (registered, failed, deleted, none)",
            ["provider", "state"], registry=r)
        self.vendor_requests = Counter(
            "syncd_vendor_requests_total", "HTTP attempts sent to vendors (retries and token "
            "calls included), by route template and outcome", ["vendor", "route", "outcome"],
            registry=r)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and time it (`route` is the route's template)."""
        key = (route, method if method in HTTP_METHODS else "other", status)
        counted = self._http_counted.get(key)
        if counted is None:
            counted = self._http_counted[key] = self.http_requests.labels(
                route=route, method=key[1], status=str(status))
        counted.inc()
        timed = self._http_timed.get(route)
        if timed is None:
            timed = self._http_timed[route] = self.http_seconds.labels(route=route)
        timed.observe(seconds)

    def event(self, source: str, outcome: str) -> None:
        """Count one pushed vendor event by outcome (stored, duplicate, quarantined, …)."""
        counted = self._events.get((source, outcome))
        if counted is None:
            counted = self._events[(source, outcome)] = self.events.labels(
                source=source, outcome=outcome)
        counted.inc()

    def vendor_request(self, vendor: str, route: str, outcome: str) -> None:
        """Count one attempt sent to a vendor."""
        self.vendor_requests.labels(vendor=vendor, route=route, outcome=outcome).inc()

    def set_subscription(self, provider: str, state: str | None) -> None:
        """Mark `state` (None: no subscription) as the provider's current one."""
        current = state or "none"
        for name in SUBSCRIPTION_STATES:
            self.subscription.labels(provider=provider, state=name).set(int(name == current))

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

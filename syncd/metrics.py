"""Prometheus metrics, in a registry owned by the app (no module-level globals).

Gauges that describe the database (inbox backlog, last successes, failures in a row,
subscription state, Codelocks quota) are refreshed from it when /metrics is scraped, so every
replica reports the same truth.
"""

from __future__ import annotations

import bisect
import platform
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

import syncd

# No `*_created` series: they double every counter and histogram and nobody graphs them.
# (prometheus_client keeps this switch process-wide.)
disable_created_metrics()  # type: ignore[no-untyped-call]

SUBSCRIPTION_STATES = ("registered", "failed", "deleted", "none")


# HTTP methods counted under their own name; any other token a client sends counts as "other",
# so a scanner cannot grow the label set.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class PerRequest(Collector):
    """The metrics every request or pushed event updates, kept as plain numbers and handed to
    Prometheus when it scrapes.

    prometheus_client's own children take a lock and check their type on every inc() and
    observe(): with three updates a request that was a tenth of intake's time. Everything here
    is updated from the event loop's thread only, and read whole at scrape time.
    """

    BUCKETS = Histogram.DEFAULT_BUCKETS  # (0.005 … 10, +Inf), as a plain Histogram would have
    LE = tuple(floatToGoString(b) for b in BUCKETS)  # type: ignore[no-untyped-call]

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}  # (route, method, status) -> count
        self.durations: dict[str, list[float]] = {}  # route -> count per bucket, then the sum
        self.events: dict[tuple[str, str], int] = {}  # (source, outcome) -> count

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        self.recorder(route)(method, status, seconds)

    def recorder(self, route: str) -> Callable[[str, int, float], None]:
        """`request()` for one route, its histogram bound once: the request bookkeeping takes
        one per route when the route is added, so a request costs one call and two dict steps.
        The route's series appear with its first request."""
        requests, bounds, durations = self.requests, self.BUCKETS, self.durations
        buckets: list[float] | None = durations.get(route)

        def record(method: str, status: int, seconds: float) -> None:
            nonlocal buckets
            key = (route, method, status)
            n = requests.get(key)
            if n is None:  # a new series, or a method counted as "other"
                if method not in HTTP_METHODS:
                    key = (route, "other", status)
                n = requests.get(key, 0)
            requests[key] = n + 1
            if buckets is None:
                buckets = durations.setdefault(route, [0.0] * (len(bounds) + 1))
            buckets[bisect.bisect_left(bounds, seconds)] += 1
            buckets[-1] += seconds

        return record

    def event(self, source: str, outcome: str) -> None:
        """Count one pushed event by outcome."""
        key = (source, outcome)
        self.events[key] = self.events.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The three families, as Prometheus reads them."""
        requests = CounterMetricFamily("syncd_http_requests", "HTTP requests served",
                                       labels=["route", "method", "status"])
        for (route, method, status), n in sorted(self.requests.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        durations = HistogramMetricFamily("syncd_http_request_duration_seconds",
                                          "HTTP request latency", labels=["route"])
        for route, buckets in sorted(self.durations.items()):
            cumulative: list[tuple[str, float]] = []
            total = 0.0
            for le, in_bucket in zip(self.LE, buckets, strict=False):
                total += in_bucket
                cumulative.append((le, total))
            durations.add_metric([route], cumulative, buckets[-1])
        yield durations
        events = CounterMetricFamily("syncd_events", "Pushed vendor events by outcome",
                                     labels=["source", "outcome"])
        for (source, outcome), n in sorted(self.events.items()):
            events.add_metric([source, outcome], n)
        yield events


class PoolStats(NamedTuple):
    """One database pool as /metrics shows it."""

    pool: str  # requests, jobs (the daemon's two pools) or main (a one-shot command's)
    size: int  # the most connections it may open
    in_use: int  # connections lent out right now
    acquire_timeouts: int  # waits for a connection that gave up, since start


class HasPoolStats(Protocol):
    """Anything that can describe a pool (syncd.db.pool.Database)."""

    def stats(self) -> PoolStats:
        """The pool's numbers now."""


class Pools(Collector):
    """The database pools' sizes, use and acquire timeouts, read from the pools when scraped."""

    def __init__(self) -> None:
        self.watched: list[HasPoolStats] = []

    def watch(self, pool: HasPoolStats) -> None:
        """Report `pool` from now on."""
        self.watched.append(pool)

    def collect(self) -> Iterator[Metric]:
        """Three families, one sample per pool each."""
        size = GaugeMetricFamily("syncd_db_pool_size", "Connections the pool may open",
                                 labels=["pool"])
        in_use = GaugeMetricFamily("syncd_db_pool_in_use", "Pooled connections lent out now",
                                   labels=["pool"])
        timeouts = CounterMetricFamily(
            "syncd_db_acquire_timeouts", "Waits for a pooled connection that gave up after "
            "database.acquire_timeout_seconds", labels=["pool"])
        for stats in (pool.stats() for pool in self.watched):
            size.add_metric([stats.pool], stats.size)
            in_use.add_metric([stats.pool], stats.in_use)
            timeouts.add_metric([stats.pool], stats.acquire_timeouts)
        yield size
        yield in_use
        yield timeouts


class Metrics:
    """Every metric syncd exports, registered in one registry per process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The standard process_* (CPU, memory, file descriptors, start time) and python_*
        # (version, garbage collector) series, as every Python exporter has them: syncd's own
        # registry has none of prometheus_client's default collectors otherwise.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge("syncd_build_info", "Always 1; the labels say what is running",
                                ["version", "python"], registry=r)
        self.build_info.labels(version=syncd.__version__,
                               python=platform.python_version()).set(1)
        self.per_request = PerRequest()  # HTTP requests, their durations, pushed events
        r.register(self.per_request)
        self.job_runs = Counter("syncd_job_runs_total", "Job runs by outcome",
                                ["job", "status"], registry=r)
        self.job_seconds = Histogram("syncd_job_run_duration_seconds", "Job run duration", ["job"],
                                     buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600), registry=r)
        self.job_runs_active = Gauge("syncd_job_runs_active",
                                     "Job runs this process is carrying out now", registry=r)
        self.job_runs_waiting = Gauge(
            "syncd_job_runs_waiting", "Job runs waiting for one of this process's job slots "
            "(they hold no connection and no lock)", registry=r)
        self.job_locks_lost = Counter(
            "syncd_job_locks_lost_total", "Job runs stopped because their lock went with the "
            "lock connection (e.g. PostgreSQL restarted)", ["job"], registry=r)
        self.pools = Pools()  # the database pools register themselves once open
        r.register(self.pools)
        self.job_last_success = Gauge(
            "syncd_job_last_success_timestamp_seconds",
            "Unix time the job last finished successfully (any replica)", ["job"], registry=r)
        self.db_up = Gauge("syncd_database_up", "1 when the last database probe succeeded",
                           registry=r)
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
        self.job_failed_in_a_row = Gauge(
            "syncd_job_consecutive_failures",
            "Latest finished runs of the job that failed in a row, 0 after a success (any replica)",
            ["job"], registry=r)
        self.ready = Gauge("syncd_ready", "1 when this replica is ready as /readyz says (database "
                           "reachable, migrations current)", registry=r)
        self.quota_used = Gauge("syncd_codelocks_quota_used_calls",
                                "Codelocks calls counted this quota period (jobs and operators)",
                                ["category"], registry=r)
        self.quota_limit = Gauge("syncd_codelocks_quota_limit_calls",
                                 "Codelocks calls the quota allows this period (bolt-ons included)",
                                 ["category"], registry=r)
        self.quota_reserve = Gauge("syncd_codelocks_quota_reserve_calls",
                                   "Codelocks calls of the period kept for operators",
                                   ["category"], registry=r)
        self.quota_projected = Gauge(
            "syncd_codelocks_quota_projected_calls",
            "Codelocks calls the period would end with at its pace so far", ["category"],
            registry=r)
        self.replicas = Gauge(
            "syncd_replicas", "Daemon replicas (`syncd run`) that beat within "
            "status.stale_after_seconds, as the database shows them", registry=r)
        self.job_overdue = Gauge(
            "syncd_job_overdue", "1 while an enabled job is overdue: no start for two intervals "
            "(a planned K3 job: one interval past its planned run)", ["job"], registry=r)
        self.task_up = Gauge(
            "syncd_task_up", "1 while this process's supervised background task is up; 0 when "
            "it keeps dying (tasks.restart_limit crashes within tasks.restart_window_seconds)",
            ["task"], registry=r)
        self.task_restarts = Counter(
            "syncd_task_restarts_total", "Restarts of this process's supervised background tasks "
            "after a crash", ["task"], registry=r)
        self.runs_abandoned = Counter(
            "syncd_runs_abandoned_total", "Runs this process marked failed because the replica "
            "running them stopped beating", registry=r)
        self.vendor_requests = Counter(
            "syncd_vendor_requests_total", "HTTP attempts sent to vendors (retries and token "
            "calls included), by route template and outcome", ["vendor", "route", "outcome"],
            registry=r)

    def event(self, source: str, outcome: str) -> None:
        """Count one pushed vendor event by outcome (stored, duplicate, quarantined, …)."""
        self.per_request.event(source, outcome)

    def vendor_request(self, vendor: str, route: str, outcome: str) -> None:
        """Count one attempt sent to a vendor."""
        self.vendor_requests.labels(vendor=vendor, route=route, outcome=outcome).inc()

    def set_subscription(self, provider: str, state: str | None) -> None:
        """Mark `state` (None: no subscription) as the provider's current one."""
        current = state or "none"
        for name in SUBSCRIPTION_STATES:
            self.subscription.labels(provider=provider, state=name).set(int(name == current))

    def set_quota(self, category: str, *, used: int, limit: int, reserve: int,
                  projected: int) -> None:
        """Set one Codelocks quota category's gauges."""
        self.quota_used.labels(category=category).set(used)
        self.quota_limit.labels(category=category).set(limit)
        self.quota_reserve.labels(category=category).set(reserve)
        self.quota_projected.labels(category=category).set(projected)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

"""Prometheus metrics, in a registry owned by the app (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Every metric syncd exports, registered in one registry per process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("syncd_http_requests_total", "HTTP requests served",
                                     ["route", "method", "status"], registry=r)
        self.http_seconds = Histogram("syncd_http_request_seconds", "HTTP request latency",
                                      ["route"], registry=r)
        self.job_runs = Counter("syncd_job_runs_total", "Job runs by outcome",
                                ["job", "status"], registry=r)
        self.job_seconds = Histogram("syncd_job_run_seconds", "Job run duration", ["job"],
                                     buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600), registry=r)
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
        self.vendor_requests = Counter(
            "syncd_vendor_requests_total", "HTTP attempts sent to vendors (retries and token "
            "calls included), by route template and outcome", ["vendor", "route", "outcome"],
            registry=r)

    def vendor_request(self, vendor: str, route: str, outcome: str) -> None:
        """Count one attempt sent to a vendor."""
        self.vendor_requests.labels(vendor=vendor, route=route, outcome=outcome).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

"""The per-request metrics syncd keeps as plain numbers read exactly as prometheus_client's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from syncd.metrics import PerRequest

OBSERVED = [("/hooks/neolock/{secret}", "POST", 200, 0.004), ("/hooks/neolock/{secret}", "POST",
            200, 0.005), ("/hooks/neolock/{secret}", "POST", 503, 0.7), ("/healthz", "GET", 200,
            0.0001), ("/v2/device", "POST", 200, 12.0), ("unmatched", "BREW", 404, 0.01)]
EVENTS = [("neolock", "stored"), ("neolock", "stored"), ("neolock", "duplicate")]


def test_plain_counters_render_as_a_prometheus_counter_and_histogram_would() -> None:
    """Requests, durations (bucket bounds included) and events scrape identically to the same
    observations fed to prometheus_client's Counter and Histogram; odd methods count as other."""
    ours = CollectorRegistry()
    stats = PerRequest()
    ours.register(stats)
    theirs = CollectorRegistry()
    requests = Counter("syncd_http_requests_total", "HTTP requests served",
                       ["route", "method", "status"], registry=theirs)
    seconds = Histogram("syncd_http_request_duration_seconds", "HTTP request latency", ["route"],
                        registry=theirs)
    events = Counter("syncd_events_total", "Pushed vendor events by outcome",
                     ["source", "outcome"], registry=theirs)
    for route, method, status, took in OBSERVED:
        stats.request(route, method, status, took)
        requests.labels(route=route, method=method if method != "BREW" else "other",
                        status=str(status)).inc()
        seconds.labels(route=route).observe(took)
    for source, outcome in EVENTS:
        stats.event(source, outcome)
        events.labels(source=source, outcome=outcome).inc()

    def samples(registry: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines()
                      if not line.startswith("#") and "_created" not in line)

    assert samples(ours) == samples(theirs)
    assert any('method="other"' in line for line in samples(ours))

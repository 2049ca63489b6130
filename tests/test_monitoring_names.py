"""Every series the alert rules, their promtool tests and the Grafana dashboard name is one a
running syncd exports — its name, and the labels matched on — read from a live /metrics of a
daemon with every vendor configured against the simulators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from syncd.alerts.deliverer import OUTCOMES
from syncd.db import demo as demo_db
from syncd.devtools.simulators.alert_receiver import AlertReceiver
from syncd.devtools.simulators.alert_receiver import create_app as create_receiver
from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.runner import Simulators, run_all
from syncd.jobs.runner import Outcome
from syncd.metrics import SUBSCRIPTION_STATES
from syncd.reconcile.findings import SEVERITY_RANK
from syncd.web import keys
from syncd.web.alerting import DELIVERER
from tests.monitoring import (
    Selector,
    dashboard_selectors,
    rule_selectors,
    rule_test_selectors,
    selectors,
)
from tests.served import ServeSyncd

# Prometheus' own series for every scrape target (not syncd's).
PROMETHEUS_OWN = {"up"}
# Labels Prometheus attaches to every scraped series (honor_labels keeps syncd's own `job`).
TARGET_LABELS = {"instance", "job"}
VENDORS = {"neolock", "knoxguard", "codelocks", "biotime"}
SECRET = "monitoring-hook-secret-0123456789"
RUN_ONCE = {"enabled": True, "interval_seconds": 3600, "jitter_seconds": 0}


def exported(text: str) -> dict[str, set[str]]:
    """Sample name → the label names its series carry, from a Prometheus text exposition."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def problems(used: Iterable[tuple[str, Selector]], series: dict[str, set[str]]) -> list[str]:
    """What a rule, promtool test or panel names that `series` (a live /metrics) lacks."""
    found = []
    for where, selector in used:
        if selector.name in PROMETHEUS_OWN:
            continue
        if selector.name not in series:
            found.append(f"{where}: syncd exports no {selector.name}")
        elif unknown := selector.labels - series[selector.name] - TARGET_LABELS:
            found.append(f"{where}: {selector.name} has no label {', '.join(sorted(unknown))}")
    return sorted(set(found))


def value_problems(used: Iterable[tuple[str, Selector]],
                   values: dict[tuple[str, str], set[str]]) -> list[str]:
    """Values a rule or panel matches on (`=`, or each `|` alternative of `=~`) that syncd
    never gives that label; a matched label without a known set of values is one too."""
    found = []
    for where, selector in used:
        if selector.name in PROMETHEUS_OWN:
            continue
        for label, op, value in selector.matchers:
            if label in TARGET_LABELS or op not in ("=", "=~"):
                continue
            known = values.get((selector.name, label))
            if known is None:
                found.append(f"{where}: no known values of {selector.name}{{{label}}}")
            elif wrong := sorted(set(value.split("|") if op == "=~" else [value]) - known):
                found.append(f"{where}: {selector.name}{{{label}}} is never {', '.join(wrong)}")
    return sorted(set(found))


def test_selectors_read_names_and_matchers_past_functions_keywords_and_strings() -> None:
    """The PromQL reader finds each series with its matchers, and takes no function,
    aggregation, keyword, by/on label list, duration, Grafana variable or string for one."""
    expr = ('sum by (job, status) (increase(syncd_job_runs_total{status="failed", '
            'route=~"/x{y}|$v"}[$__rate_interval])) / on (job) group_left max(syncd_a offset 5m)'
            ' > bool 0.5 unless absent(up{job="syncd"} == 1) or histogram_quantile(0.9, '
            'rate(b_bucket[5m:1m])) and {__name__="c", x!~\'y\'}')
    assert selectors(expr) == [
        Selector("syncd_job_runs_total", (("status", "=", "failed"), ("route", "=~", "/x{y}|$v"))),
        Selector("syncd_a", ()),
        Selector("up", (("job", "=", "syncd"),)),
        Selector("b_bucket", ()),
        Selector("c", (("__name__", "=", "c"), ("x", "!~", "y"))),
    ]


def test_the_name_check_reports_unknown_names_labels_and_values_but_not_target_labels() -> None:
    """A misspelt metric, a label the metric lacks and a value syncd never gives a label are
    reported; `instance`/`job`, `up` and negative matchers are not."""
    series = {"syncd_ready": set(), "syncd_drift_open": {"kind", "severity"}}
    used = [("r1", s) for s in selectors(
        'syncd_redy == 0 or syncd_drift_open{kind="x", sevrity="y", instance="i"} '
        'or up{job="syncd"} or syncd_ready{job="syncd"}')]
    assert problems(used, series) == ["r1: syncd exports no syncd_redy",
                                      "r1: syncd_drift_open has no label sevrity"]
    matched = [("r2", s) for s in selectors(
        'syncd_drift_open{severity="critcal", kind="x"} or syncd_drift_open{severity=~"info|bad"}'
        ' or syncd_drift_open{severity!="warning"} or up{job="syncd"}')]
    assert value_problems(matched, {("syncd_drift_open", "severity"): set(SEVERITY_RANK)}) == [
        "r2: no known values of syncd_drift_open{kind}",
        "r2: syncd_drift_open{severity} is never bad",
        "r2: syncd_drift_open{severity} is never critcal"]


def _sections(sims: Simulators, hook_url: str, hook_secret: str) -> dict[str, object]:
    """Every vendor at its simulator, one job per vendor and reconcile run at start, a hook."""
    neo, knox, k3, bio = (sims.neolock.sim, sims.knoxguard.sim, sims.codelocks.sim,
                          sims.biotime.sim)
    off = ("housekeeping", "neolock-subscription", "neolock-devices", "knox-devices",
           "biotime-punches", "k3-audit", "k3-clients")
    run = ("neolock-uploads", "knox-uploads", "biotime-terminals", "k3-locks", "reconcile")
    return {
        "neolock": {"base_url": sims.neolock.url, "login": neo.login, "password": neo.password,
                    "webhook_secret": SECRET},
        "knoxguard": {"base_url": sims.knoxguard.url, "api_token": knox.api_token},
        "codelocks": {"base_url": sims.codelocks.url, "api_key": k3.api_key,
                      "access_keys": list(k3.access_keys), "plan": k3.plan},
        "biotime": {"base_url": sims.biotime.url, "username": bio.username,
                    "password": bio.password, "timezone": bio.timezone},
        "jobs": {**{name: {"enabled": False} for name in off},
                 **dict.fromkeys(run, RUN_ONCE)},
        "alerts": {"hooks": [{"url": hook_url, "secret": hook_secret, "name": "ops"}],
                   "poll_seconds": 0.2},
        "reconcile": {"grace_seconds": 0},
    }


async def test_every_series_a_rule_its_tests_or_a_panel_names_is_exported_by_a_running_syncd(
        serve_syncd: ServeSyncd) -> None:
    """With every vendor configured against the simulators, a job of each vendor run, a drift
    case alerted to a hook, a push and registry calls answered, /metrics carries every series
    (and matched label) the rules, their promtool tests and the dashboard name — the issue-20
    names excepted only while they are still missing — with vendor requests of all four vendors;
    the values rules and panels match on (routes, statuses, outcomes, states) are syncd's."""
    used = [*rule_selectors(), *rule_test_selectors(), *dashboard_selectors()]
    assert {s.name for _, s in used} >= {"syncd_job_consecutive_failures", "syncd_ready"}
    receiver = AlertReceiver("whsec_" + "bW9uaXRvcmluZy1ob29r" * 2)
    async with run_all(seed=5, devices=4, locks=2, terminals=3) as sims, \
            serve(create_receiver(receiver)) as hook, \
            serve_syncd(SECRET, sections=_sections(sims, hook.url + "/syncd", receiver.secret)) \
            as served, aiohttp.ClientSession() as http:
        # A terminal the business knows and BioTime does not: a terminal_missing case, alerted.
        await demo_db.seed_terminals(served.app[keys.DB], [("CKPF000000LOST", "Back door")])
        base = f"http://127.0.0.1:{served.port}"
        await http.post(f"{base}/hooks/neolock/{SECRET}", json={"id": "e1", "deviceUid": "u1"})
        await http.post(f"{base}/v2/device", json={
            "mac_address": "a1:b2:c3:d4:e5:f6", "device_os": "android", "device_version": "14",
            "device_type": "phone", "app_version": "2.1.0", "app_name": "shop"})
        await http.get(f"{base}/api/base/configs")
        deadline = time.monotonic() + 90
        while True:
            await served.app[DELIVERER].refresh_gauges()  # drift and deliveries: now, not in 15 s
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
            series = exported(text)
            vendors = {s.labels["vendor"] for f in text_string_to_metric_families(text)
                       for s in f.samples if s.name == "syncd_vendor_requests_total"}
            missing = problems(used, series)
            if (not missing and vendors >= VENDORS) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
    assert missing == []
    assert vendors >= VENDORS
    routes = {s.labels["route"] for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "syncd_http_requests_total"}
    assert value_problems([*rule_selectors(), *dashboard_selectors()], {
        ("syncd_http_requests_total", "route"): routes,  # the routes that answered above
        ("syncd_http_request_duration_seconds_bucket", "route"): routes,
        ("syncd_job_runs_total", "status"): {outcome.value for outcome in Outcome},
        ("syncd_drift_open", "severity"): set(SEVERITY_RANK),
        ("syncd_alert_attempts_total", "outcome"): set(OUTCOMES),
        ("syncd_subscription_state", "state"): set(SUBSCRIPTION_STATES),
    }) == []
    assert {"syncd_replicas", "syncd_job_overdue", "syncd_task_up"} <= series.keys()

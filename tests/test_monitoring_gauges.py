"""The database-backed gauges the Prometheus rules alert on: readiness, failures in a row and the
Codelocks quota, set from the database whenever /metrics is scraped."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from syncd.app import create_app
from syncd.db.pool import Database
from syncd.settings.core import Settings
from syncd.sync.codelocks.quota import QuotaConfig, QuotaLedger
from syncd.sync.codelocks.status import period_use
from syncd.web import keys

AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]
CODELOCKS = {"base_url": "http://127.0.0.1:9", "api_key": "k3-api-key-never-called",
             "access_keys": ["k3-access-key"], "plan": "Business 1"}


async def samples(client: TestClient[web.Request, web.Application]) -> dict[tuple[str, frozenset[
        tuple[str, str]]], float]:
    """Every sample of one scrape: (name, labels) → value."""
    text = await (await client.get("/metrics")).text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    """A label set as `samples` keys it."""
    return frozenset(pairs.items())


async def test_a_scrape_reports_readiness_without_a_readiness_probe(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """/metrics sets syncd_ready and syncd_database_up itself, so a daemon nobody probes with
    /readyz still tells Prometheus it is ready."""
    client = await aiohttp_client(create_app(make_settings()))
    found = await samples(client)
    assert found[("syncd_ready", labels())] == 1.0
    assert found[("syncd_database_up", labels())] == 1.0


async def test_failures_in_a_row_count_the_runs_since_the_latest_success(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """syncd_job_consecutive_failures{job} counts the failed runs after a job's latest success
    (a running run does not count; a success resets it to 0)."""
    client = await aiohttp_client(create_app(make_settings()))
    runs = {"neolock-devices": ["ok", "failed", "failed", "running"],
            "k3-locks": ["failed", "failed", "ok"],
            "biotime-terminals": ["failed"]}
    async with client.app[keys.DB].connection() as conn:
        for job, statuses in runs.items():
            for age, status in enumerate(reversed(statuses)):
                await conn.execute(
                    "INSERT INTO ops.sync_runs (job, status, runner, started_at) "
                    "VALUES ($1, $2, 't', now() - make_interval(mins => $3))", job, status, age)
    found = await samples(client)
    assert {job: found[("syncd_job_consecutive_failures", labels(job=job))] for job in runs} == \
        {"neolock-devices": 2.0, "k3-locks": 0.0, "biotime-terminals": 1.0}


async def test_codelocks_quota_gauges_show_the_ledger_of_this_period(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """With [codelocks] configured, each category's calls used, quota, reserve and projection are
    exported from the ledger (Business 1: 100 NetCode and 1,000 Utility calls, 20 % reserve)."""
    settings = make_settings(codelocks=CODELOCKS)
    client = await aiohttp_client(create_app(settings))
    assert settings.codelocks is not None
    ledger = QuotaLedger(client.app[keys.DB], QuotaConfig.from_settings(settings.codelocks))
    for _ in range(3):
        await ledger.reserve("utility", job="k3-locks")
    found = await samples(client)

    def quota(category: str) -> dict[str, float]:
        return {what: found[(f"syncd_codelocks_quota_{what}_calls", labels(category=category))]
                for what in ("used", "limit", "reserve", "projected")}

    utility, netcode = quota("utility"), quota("netcode")
    assert (utility["used"], utility["limit"], utility["reserve"]) == (3.0, 1000.0, 200.0)
    assert utility["projected"] >= 3.0  # at this pace: at least what is already used
    assert netcode == {"used": 0.0, "limit": 100.0, "reserve": 20.0, "projected": 0.0}


async def test_the_projection_extends_the_pace_so_far_to_the_period_end(db: Database) -> None:
    """Half-way through a 30-day period, 40 calls project to 80; calls of an earlier period do
    not count."""
    april = dt.datetime(2026, 4, 16, 0, 0, tzinfo=dt.UTC)  # 15 of April's 30 days gone
    ledger = QuotaLedger(db, QuotaConfig(netcode=100, utility=1000), clock=lambda: april)
    for _ in range(40):
        await ledger.reserve("utility", job="k3-audit")
    march = QuotaLedger(db, QuotaConfig(netcode=100, utility=1000),
                        clock=lambda: april - dt.timedelta(days=20))
    await march.reserve("netcode", job=None)
    use = await period_use(ledger, april)
    assert {category: (usage.calls, projected) for category, (usage, projected) in use.items()} \
        == {"utility": (40, 80), "netcode": (0, 0)}


async def test_each_hook_counts_every_delivery_outcome_from_zero(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """Before any alert, /metrics has syncd_alert_attempts_total at 0 for each configured hook and
    outcome, so increase() sees a hook's first dead-lettering (SyncdAlertDeliveriesDead)."""
    hooks = [{"url": "http://127.0.0.1:9/a", "secret": "whsec_" + "QUJD" * 8, "name": "pager"},
             {"url": "http://127.0.0.1:9/b", "secret": "whsec_" + "REVG" * 8, "name": "chat"}]
    client = await aiohttp_client(create_app(make_settings(alerts={"hooks": hooks})))
    found = await samples(client)
    attempts = {dict(labelled)["hook"] + "/" + dict(labelled)["outcome"]: value
                for (name, labelled), value in found.items()
                if name == "syncd_alert_attempts_total"}
    assert attempts == {f"{hook}/{outcome}": 0.0 for hook in ("pager", "chat")
                        for outcome in ("delivered", "retry", "stopped", "dead", "error")}

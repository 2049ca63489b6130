"""The Codelocks quota ledger and budget planner: counted before sending, never exceeded."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.db.codelocks import Usage
from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.errors import QuotaExhausted
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.vendors import CodelocksSettings
from syncd.sync.codelocks.planner import JobNeed, plan_intervals
from syncd.sync.codelocks.quota import PLANS, QuotaConfig, QuotaLedger, alerts_crossed
from tests.clocks import Clock
from tests.k3_env import START, k3_context, k3_jobs, k3_settings, run_all, usage_calls

AUDIT_ROUTE = "/u/1/k3connect/{id}/audit"
CLIENTS_ROUTE = "/u/1/k3connect/{id}/clients"


@pytest.fixture
def clock() -> Clock:
    """The clock the simulator and syncd share, standing at START until the test moves it."""
    return Clock(START)


@pytest.fixture
def sim(clock: Clock) -> CodelocksSim:
    """A tenant with 6 locks."""
    return CodelocksSim(seed=5, locks=6, audit_per_lock=8, now=clock.now)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as session:
        yield session


def config(utility: int, reserve_percent: float = 20.0) -> QuotaConfig:
    """A custom quota."""
    return QuotaConfig(netcode=10, utility=utility, reserve_percent=reserve_percent)


async def outbox(db: Database) -> list[str]:
    """Event ids in the outbox, in order."""
    async with db.connection() as conn:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM ops.outbox ORDER BY id")]


async def test_two_replicas_reserving_at_once_never_exceed_the_quota(db: Database,
                                                                     db_dsn: str) -> None:
    """Two ledgers on separate pools racing for calls grant exactly the jobs' budget, no more."""
    other = await Database.connect(db_dsn, min_size=1, max_size=5)
    try:
        now = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
        ledgers = [QuotaLedger(d, config(50), Clock(now).now) for d in (db, other)]

        async def take(ledger: QuotaLedger) -> bool:
            try:
                await ledger.reserve(UTILITY, job="k3-audit")
            except QuotaExhausted:
                return False
            return True

        granted = await asyncio.gather(*(take(ledgers[i % 2]) for i in range(80)))
    finally:
        await other.close()
    assert sum(granted) == 40  # 50 less the 20 % reserve
    usage = await ledgers[0].usage(UTILITY, now)
    assert (usage.calls, usage.refused) == (40, 40)


async def test_operators_may_use_the_reserve_and_jobs_adapt_when_they_go_past_it(
        db: Database) -> None:
    """Jobs stop at quota − reserve; operators use the reserve; beyond it they shrink the jobs'
    budget, and nobody passes the quota."""
    now = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    ledger = QuotaLedger(db, config(10), Clock(now).now)
    for _ in range(8):
        await ledger.reserve(UTILITY, job="k3-locks")
    with pytest.raises(QuotaExhausted, match="scheduled jobs' budget"):
        await ledger.reserve(UTILITY, job="k3-locks")
    await ledger.reserve(UTILITY, job=None)
    await ledger.reserve(UTILITY, job=None)
    with pytest.raises(QuotaExhausted, match="the quota is used up"):
        await ledger.reserve(UTILITY, job=None)
    usage = await ledger.usage(UTILITY, now)
    assert (usage.calls, usage.operator_calls, usage.job_left) == (10, 2, 0)


async def test_alerts_are_enqueued_once_when_a_reservation_crosses_each_line(db: Database) -> None:
    """80 %, 95 %, the jobs' budget and the whole quota each enqueue one alert, with stable ids."""
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    ledger = QuotaLedger(db, config(20, reserve_percent=10), Clock(now).now)
    for _ in range(18):
        await ledger.reserve(UTILITY, job="k3-audit")
    assert await outbox(db) == ["quota-codelocks-utility-2026-12-warn80",
                                "quota-codelocks-utility-2026-12-exhausted-scheduled"]
    with pytest.raises(QuotaExhausted):
        await ledger.reserve(UTILITY, job="k3-audit")
    await ledger.reserve(UTILITY, job=None)
    await ledger.reserve(UTILITY, job=None)
    assert (await outbox(db))[2:] == ["quota-codelocks-utility-2026-12-warn95",
                                      "quota-codelocks-utility-2026-12-exhausted"]


def test_alert_lines_are_crossed_only_by_the_call_that_crosses_them() -> None:
    """A reservation below a line, or already past it, raises nothing."""
    assert alerts_crossed(10, Usage(11, 100, 0, 0), scheduled=True) == []
    assert [a[0] for a in alerts_crossed(79, Usage(80, 100, 0, 0), scheduled=True)] == ["warn80"]
    assert alerts_crossed(80, Usage(81, 100, 0, 0), scheduled=True) == []


async def test_retries_and_5xx_are_counted_and_the_quota_is_never_exceeded(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """With half the audit and client calls failing 500 (retried), two replicas running the jobs
    side by side until the budget is gone count every attempt: the ledger equals the vendor's
    count, never passes the quota, and the vendor never had to refuse a call."""
    settings = k3_settings(sim, running, quota={"netcode": 10, "utility": 60})
    running.faults.set(AUDIT_ROUTE, FaultSpec(error_rate=0.5))
    running.faults.set(CLIENTS_ROUTE, FaultSpec(error_rate=0.5))
    replicas = [k3_jobs(k3_context(db, settings, http, clock)) for _ in range(2)]
    for _ in range(12):
        await asyncio.gather(*(run_all(db, jobs) for jobs in replicas))
        clock.advance(hours=1)
    used = await usage_calls(db)
    assert used == sim.quota_used(UTILITY)
    # The jobs' budget is 60 − 20 % = 48; the planner stops them when no whole run fits.
    assert 30 <= used <= 48
    assert sim.quota_refused(UTILITY) == 0


async def test_jobs_skip_with_a_recorded_reason_when_the_budget_is_gone_until_next_period(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """Once the jobs' budget is used up, runs make no call and say why; the next period they run."""
    settings = k3_settings(sim, running, quota={"netcode": 10, "utility": 8}, reserve_percent=0)
    jobs = k3_jobs(k3_context(db, settings, http, clock))
    await run_all(db, jobs)  # 2 lock lists + 6 audit pages: the whole budget
    before = sim.quota_used(UTILITY)
    results = await run_all(db, jobs)
    assert all(r.outcome is Outcome.OK for r in results)
    assert sim.quota_used(UTILITY) == before
    async with db.connection() as conn:
        plan = {r["job"]: dict(r) for r in await conn.fetch("SELECT * FROM ops.quota_plan")}
    assert "budget" in plan["k3-locks"]["skip_reason"]
    assert plan["k3-locks"]["next_due_at"] == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    clock.move_to(dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC))
    sim.set_month("2026-12")
    result = await JobRunner(db).run(jobs["k3-audit"])  # the heaviest weight gets the 8 calls
    assert result.outcome is Outcome.OK and result.requests == 6


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_planner_spends_each_plans_budget_evenly_within_it(plan: str) -> None:
    """For every plan, 10 locks and 2 access keys: the planned runs fit in the jobs' budget, use
    at least 90 % of it (or run every job at the shortest interval), and audit runs most often."""
    utility = PLANS[plan][1]
    budget = utility - utility // 5
    month = 30 * 86400.0
    needs = [JobNeed("k3-locks", 1, 2), JobNeed("k3-audit", 6, 10), JobNeed("k3-clients", 1, 10)]
    plans = plan_intervals(needs, calls_left=budget, seconds_left=month, min_interval=900,
                           max_interval=7 * 86400)
    spent = sum(plans[n.name].runs * n.cost for n in needs)
    assert spent <= budget
    assert spent >= 0.9 * budget
    intervals = {name: p.interval for name, p in plans.items()}
    assert all(i is not None and 900 <= i <= 7 * 86400 for i in intervals.values())
    assert intervals["k3-audit"] <= intervals["k3-clients"]  # type: ignore[operator]


def test_planner_gives_a_capped_jobs_surplus_to_the_others_and_adapts_to_more_locks() -> None:
    """A job that cannot spend its share at the shortest interval leaves the rest to the others;
    doubling the locks doubles the audit interval."""
    needs = [JobNeed("k3-locks", 100, 1), JobNeed("k3-audit", 1, 10)]
    plans = plan_intervals(needs, calls_left=500, seconds_left=86400, min_interval=900,
                           max_interval=86400)
    assert plans["k3-locks"].interval == 900
    assert plans["k3-audit"].calls == 500 - 96
    few = plan_intervals([JobNeed("k3-audit", 1, 10)], calls_left=300, seconds_left=30 * 86400,
                         min_interval=900, max_interval=7 * 86400)["k3-audit"].interval
    many = plan_intervals([JobNeed("k3-audit", 1, 20)], calls_left=300, seconds_left=30 * 86400,
                          min_interval=900, max_interval=7 * 86400)["k3-audit"].interval
    assert few is not None and many is not None and many > 1.9 * few


def test_planner_says_why_when_no_run_fits() -> None:
    """With fewer calls left than one run costs, the job gets no interval and a reason."""
    plans = plan_intervals([JobNeed("k3-audit", 1, 10)], calls_left=4, seconds_left=86400,
                           min_interval=900, max_interval=86400)
    assert plans["k3-audit"].interval is None
    assert "budget used up" in (plans["k3-audit"].reason or "")


def test_quota_config_plans_bolt_ons_reserve_and_period_zone() -> None:
    """Plans by name, a custom quota, bolt-ons for one period, the reserve and local periods."""
    base = {"base_url": "https://api-connect.codelocks.io", "api_key": "k" * 20,
            "access_keys": ["abc"]}
    pro = QuotaConfig.from_settings(CodelocksSettings(**base, plan="Pro 2"))
    assert (pro.quota("netcode", "2026-12"), pro.quota(UTILITY, "2026-12")) == (1250, 2000)
    custom = QuotaConfig.from_settings(CodelocksSettings(
        **base, quota={"netcode": 5, "utility": 50}, reserve_percent=10,
        bolt_ons=[{"period": "2026-12", "utility": 100}], period_timezone="Asia/Tashkent"))
    assert custom.quota(UTILITY, "2026-12") == 150 and custom.quota(UTILITY, "2027-01") == 50
    assert custom.reserve(UTILITY, "2026-12") == 15
    # 20:00 UTC on 30 November is already December in Tashkent (UTC+5).
    assert custom.period_of(dt.datetime(2026, 11, 30, 20, tzinfo=dt.UTC)) == "2026-12"
    start, end = custom.period_bounds(dt.datetime(2026, 11, 30, 20, tzinfo=dt.UTC))
    assert end - start == dt.timedelta(days=31)
    assert start == dt.datetime(2026, 11, 30, 19, tzinfo=dt.UTC)


async def test_a_vendor_quota_refusal_marks_the_period_used_up_and_jobs_then_skip(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """When Codelocks answers 429 "Limit Exceeded" (its count is higher than ours, e.g. another
    user of the API key), the run fails, the ledger is raised to the quota with an exhausted
    alert, and later runs send nothing."""
    sim.set_quota_used(UTILITY, sim.quota_limit(UTILITY))
    jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock))
    result = await JobRunner(db).run(jobs["k3-locks"])
    assert result.outcome is Outcome.FAILED and "Limit Exceeded" in (result.error or "")
    usage = await QuotaLedger(db, config(1000), clock.now).usage(UTILITY, clock.now())
    assert usage.calls == usage.quota == 1000
    assert "quota-codelocks-utility-2026-11-exhausted" in await outbox(db)
    seen = running.counters.requests
    clock.advance(hours=1)
    await run_all(db, jobs)
    assert running.counters.requests == seen


async def test_operators_spending_past_the_reserve_lengthen_the_job_intervals(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """Operator calls within the reserve leave the plan alone; past it, the jobs' budget shrinks
    and the audit interval grows."""
    k3 = k3_context(db, k3_settings(sim, running), http, clock)
    await JobRunner(db).run(k3_jobs(k3)["k3-locks"])
    before = (await k3.plan(clock.now()))["k3-audit"].interval
    for _ in range(150):
        await k3.ledger.reserve(UTILITY, job=None)
    within = (await k3.plan(clock.now()))["k3-audit"].interval
    for _ in range(250):
        await k3.ledger.reserve(UTILITY, job=None)
    past = (await k3.plan(clock.now()))["k3-audit"].interval
    assert before is not None and within is not None and past is not None
    assert within == pytest.approx(before, rel=0.02)
    assert past > 1.3 * before


async def test_no_secret_reaches_the_logs_even_at_debug_with_retries(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """With every audit call failing and retried, no log line carries the API key or an access key."""
    running.faults.set(AUDIT_ROUTE, FaultSpec(error_rate=1.0))
    jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock))
    with capture_logs() as logs:
        results = await run_all(db, jobs)
    assert results[1].outcome is Outcome.FAILED
    assert any(entry.get("event") == "vendor_retry" for entry in logs)
    text = repr(logs) + repr([r.error for r in results])
    for secret in [sim.api_key, *sim.access_keys]:
        assert secret not in text


async def test_a_quota_429_is_not_retried_and_is_counted_as_refused_and_the_run_fails(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """With the month's Utility quota used up at the vendor, `sync k3-locks k3-audit k3-clients
    --once` makes one billed call (no retry of the 429 "Limit Exceeded"), records k3-locks as
    failed, counts the refusal in report.api_usage, and the other two jobs send nothing."""
    sim.set_quota_used(UTILITY, sim.quota_limit(UTILITY))
    results = await run_all(db, k3_jobs(k3_context(db, k3_settings(sim, running), http, clock)))
    assert running.counters.requests == 1 and sim.quota_refused(UTILITY) == 1
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.OK, Outcome.OK]
    async with db.connection() as conn:
        refused = await conn.fetchval("SELECT refused FROM report.api_usage"
                                      " WHERE vendor = 'codelocks' AND category = 'utility'")
        runs = {r["job"]: (r["status"], r["requests"]) for r in await conn.fetch(
            "SELECT job, status, requests FROM report.sync_runs")}
    assert refused == 1
    assert runs["k3-locks"] == ("failed", 1)


async def test_a_throttling_429_is_retried_and_is_no_quota_refusal(
        db: Database, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession,
        clock: Clock) -> None:
    """The gateway's throttle (429 "Too Many Requests") is waited out: k3-locks retries twice,
    then succeeds; nothing is counted as refused and the period is not marked used up."""
    sim.throttle_next = 2
    jobs = k3_jobs(k3_context(db, k3_settings(sim, running), http, clock))
    result = await JobRunner(db).run(jobs["k3-locks"])
    assert result.outcome is Outcome.OK and result.items == len(sim.locks)
    assert running.counters.rate_limited == 2 and sim.quota_refused(UTILITY) == 0
    usage = await QuotaLedger(db, config(1000), clock.now).usage(UTILITY, clock.now())
    assert usage.refused == 0 and usage.calls < usage.quota
    assert "quota-codelocks-utility-2026-11-exhausted" not in await outbox(db)

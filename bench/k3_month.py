"""`k3_month`: a 30-day month of Codelocks K3 sync for Business 1 with 10 locks, on a fake clock.

The simulator and syncd share a fake clock that steps 15 minutes at a time through November.
Each lock records events through the day and its audit reaches the server only when the lock
syncs (every 1–8 hours), so entries arrive late and out of order. syncd's three K3 jobs run as
the scheduler would run them (ticking every `min_interval_seconds`, running when the planner says
they are due); on day 10 an operator spends 30 Utility calls of the reserve, and on day 15 an
eleventh lock is paired. Measured: Utility calls used (≤ the quota, and against the scheduled
jobs' budget: target ≥ 90 % used), the ledger against the simulator's own count, 429s, and audit
staleness (from an entry reaching the server to syncd storing it): median and worst.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time

import aiohttp

from bench.common import Postgres, Report, percentile
from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import serve
from syncd.settings.vendors import CodelocksSettings
from syncd.sync.base import RunContext
from syncd.sync.codelocks.audit import K3AuditJob
from syncd.sync.codelocks.jobs import K3ClientsJob, K3Context, K3Job, K3LocksJob
from syncd.vendors import usage
from syncd.vendors.pacing import RetryPolicy

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
TICK = dt.timedelta(minutes=15)
LOCKS = 10
TARGET = 0.90


class Clock:
    """The fake clock of the month."""

    def __init__(self) -> None:
        self.at = START

    def now(self) -> dt.datetime:
        """The current fake time."""
        return self.at


class Fleet:
    """Lock activity: events through the day, reaching the server when each lock syncs."""

    def __init__(self, sim: CodelocksSim, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.pending: dict[str, list[dt.datetime]] = {}
        self.next_sync: dict[str, dt.datetime] = {}
        self.arrived: dict[int, dt.datetime] = {}

    def step(self, now: dt.datetime, tick: dt.timedelta) -> None:
        """Events of this tick happen; locks whose sync time came upload what they hold."""
        for lock_id in list(self.sim.locks):
            busy = 7 <= now.hour < 20
            if self.rng.random() < (0.5 if busy else 0.05) * tick / dt.timedelta(hours=1):
                when = now + dt.timedelta(seconds=self.rng.uniform(0, tick.total_seconds()))
                self.pending.setdefault(lock_id, []).append(when)
            due = self.next_sync.setdefault(
                lock_id, now + dt.timedelta(hours=self.rng.uniform(1, 8)))
            if due <= now:
                for entered in sorted(self.pending.pop(lock_id, [])):
                    entry = self.sim.add_audit_entry(lock_id, entered_at=entered)
                    self.arrived[entry.entry_id] = now
                self.next_sync[lock_id] = now + dt.timedelta(hours=self.rng.uniform(1, 8))


async def _month(db: Database, sim: CodelocksSim, url: str, clock: Clock) -> dict[str, float]:
    settings = CodelocksSettings(base_url=url, api_key=sim.api_key, access_keys=sim.access_keys,
                                 plan="Business 1", rate_limit=1000.0,
                                 min_interval_seconds=TICK.total_seconds())
    fleet = Fleet(sim, random.Random(11))
    async with aiohttp.ClientSession() as http:
        k3 = K3Context(db, settings, http, clock=clock.now,
                       retry=RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.002))
        jobs: list[K3Job] = [K3LocksJob(k3), K3AuditJob(k3), K3ClientsJob(k3)]
        operator = k3.client(None)
        runs = 0
        while clock.at < END:
            fleet.step(clock.at, TICK)
            if clock.at == START + dt.timedelta(days=10):
                for _ in range(30):  # an operator looking at locks: spent from the reserve
                    await operator.lock(sim.access_keys[0], sim.locks_of(sim.access_keys[0])[0]
                                        .lock_id)
            if clock.at == START + dt.timedelta(days=15):
                sim.add_lock()
            for job in jobs:
                ctx = RunContext(db=db, job=job.name)
                with usage.counting(ctx.usage):  # as the job runner does
                    await job.run(ctx)
                runs += ctx.requests > 0
            clock.at += TICK
    async with db.connection() as conn:
        seen = {r["audit_entry_id"]: r["first_seen_at"] for r in await conn.fetch(
            "SELECT audit_entry_id, first_seen_at FROM vendor.k3_audit")}
        ledger = await conn.fetchval("SELECT calls FROM report.api_usage WHERE period = '2026-11'"
                                     " AND category = 'utility'")
        operator_calls = await conn.fetchval("SELECT operator_calls FROM report.api_usage WHERE "
                                             "period = '2026-11' AND category = 'utility'")
    staleness = [(seen[i] - at).total_seconds() / 3600 for i, at in fleet.arrived.items()
                 if i in seen]
    missing = [i for i, at in fleet.arrived.items() if i not in seen and at < END - dt.timedelta(
        days=1)]
    sim.set_month("2026-11")
    return {"calls": sim.quota_used(UTILITY), "ledger": ledger, "operator": operator_calls,
            "refused": sim.quota_refused(UTILITY), "runs": runs,
            "arrived": len(fleet.arrived), "stored_late": len(staleness),
            "missing": len(missing),
            "median_h": statistics.median(staleness) if staleness else 0.0,
            "p95_h": percentile(staleness, 95), "worst_h": max(staleness, default=0.0)}


async def run(pg: Postgres) -> Report:
    """Run the month and report the share of the jobs' budget used and the audit staleness."""
    clock = Clock()
    sim = CodelocksSim(seed=30, locks=LOCKS, plan="Business 1", audit_per_lock=4, now=clock.now)
    quota = sim.quota_limit(UTILITY)
    began = time.monotonic()
    async with pg.database("k3_month") as dsn, serve(create_app(sim)) as running:
        db = await Database.connect(dsn, min_size=1, max_size=4)
        try:
            m = await _month(db, sim, running.url, clock)
        finally:
            await db.close()
    budget = quota - max(quota // 5, int(m["operator"]))  # the scheduled jobs' share of the month
    share = (m["calls"] - m["operator"]) / budget
    met = (share >= TARGET and m["calls"] <= quota and m["ledger"] == m["calls"]
           and m["refused"] == 0 and m["missing"] == 0)
    return Report("k3_month_budget_used", f"{share:.1%}",
                  f"≥ {TARGET:.0%} of the jobs' budget, calls ≤ quota, ledger = vendor, 0 × 429", met,
                  [f"Utility calls used {m['calls']:.0f} of {quota}: jobs "
                   f"{m['calls'] - m['operator']:.0f} of their budget {budget}, operators "
                   f"{m['operator']:.0f} from the reserve; ledger {m['ledger']:.0f}, "
                   f"vendor {m['calls']:.0f}; 429s {m['refused']:.0f}; job runs with calls "
                   f"{m['runs']:.0f}",
                   f"audit staleness (arrival at Codelocks → stored): median "
                   f"{m['median_h']:.1f} h, p95 {m['p95_h']:.1f} h, worst {m['worst_h']:.1f} h "
                   f"over {m['stored_late']:.0f} entries; {m['missing']:.0f} arrived entries "
                   "never stored",
                   f"10 locks (11 from day 15), 2 access keys, fake clock ticking "
                   f"{TICK.total_seconds() / 60:.0f} min; simulated in {time.monotonic() - began:.0f} s"])

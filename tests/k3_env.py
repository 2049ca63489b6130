"""Shared set-up of the Codelocks K3 tests: a simulator on loopback, the clock's start, contexts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from syncd.db.pool import Database
from syncd.devtools.simulators.codelocks import CodelocksSim
from syncd.devtools.simulators.common import Running
from syncd.jobs.runner import JobRunner, RunResult
from syncd.settings.vendors import CodelocksSettings
from syncd.sync.codelocks.audit import K3AuditJob
from syncd.sync.codelocks.jobs import K3ClientsJob, K3Context, K3Job, K3LocksJob
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.002)
START = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)  # where the K3 tests' clock stands


def k3_settings(sim: CodelocksSim, running: Running, **overrides: Any) -> CodelocksSettings:
    """A `[codelocks]` section pointing at the simulator (no pacing to speak of)."""
    data: dict[str, Any] = {"base_url": running.url, "api_key": sim.api_key,
                            "access_keys": list(sim.access_keys), "plan": sim.plan,
                            "rate_limit": 1000.0}
    data.update(overrides)
    return CodelocksSettings(**data)


def k3_context(db: Database, settings: CodelocksSettings, http: aiohttp.ClientSession,
               clock: Clock) -> K3Context:
    """The jobs' shared context on the fake clock, with fast retries."""
    return K3Context(db, settings, http, clock=clock.now, retry=FAST)


def k3_jobs(k3: K3Context, *, gated: bool = False) -> dict[str, K3Job]:
    """The three K3 jobs by name."""
    jobs: list[K3Job] = [K3LocksJob(k3, gated=gated), K3AuditJob(k3, gated=gated),
                         K3ClientsJob(k3, gated=gated)]
    return {job.name: job for job in jobs}


async def run_all(db: Database, jobs: dict[str, K3Job]) -> list[RunResult]:
    """Run k3-locks, k3-audit and k3-clients once, in that order, through the runner."""
    runner = JobRunner(db)
    return [await runner.run(jobs[name]) for name in ("k3-locks", "k3-audit", "k3-clients")]


async def usage_calls(db: Database, category: str = "utility") -> int:
    """Calls counted in ops.api_usage for a category, over every period."""
    async with db.connection() as conn:
        value = await conn.fetchval("SELECT coalesce(sum(calls), 0) FROM report.api_usage "
                                    "WHERE vendor = 'codelocks' AND category = $1", category)
    return int(value)

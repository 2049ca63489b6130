"""The Codelocks budget planner: pure arithmetic from calls left, time left and job costs.

Each K3 job gets a share of the calls left to scheduled jobs in the period, by weight; a job that
cannot use its whole share even at the shortest interval gives the surplus to the others (water
filling). A job's interval spreads its share evenly over the time left. Re-planned after every
run from what is actually left, so locks that appear or vanish, a run that cost more than expected
or an operator spending past the reserve change every later interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class JobNeed:
    """What one job costs: its weight and the calls one run is expected to make."""

    name: str
    weight: float
    cost: float


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """The planner's answer for one job."""

    name: str
    interval: float | None  # seconds until the next run; None: no run fits in the budget
    calls: float  # calls set aside for this job for the rest of the period
    runs: int  # runs that fit in them
    reason: str | None = None  # why there is no run, if there is none
    cost: float = 0.0  # calls one run is expected to make

    @property
    def planned_calls(self) -> float:
        """Calls the planned runs are expected to make."""
        return self.runs * self.cost


def _water_fill(jobs: Sequence[JobNeed], calls: float, most_runs: int) -> dict[str, float]:
    """Shares of `calls` by weight; a job capped at `most_runs` runs gives its surplus away."""
    shares: dict[str, float] = {}
    active = list(jobs)
    remaining = calls
    while active:
        total = sum(job.weight for job in active)
        capped = [job for job in active if remaining * job.weight / total >= most_runs * job.cost]
        if not capped:
            shares.update({job.name: remaining * job.weight / total for job in active})
            break
        for job in capped:  # cannot spend its share even at the shortest interval: cap it
            shares[job.name] = most_runs * job.cost
            remaining -= shares[job.name]
        active = [job for job in active if job not in capped]
    return shares


def plan_intervals(jobs: Sequence[JobNeed], *, calls_left: int, seconds_left: float,
                   min_interval: float, max_interval: float) -> dict[str, JobPlan]:
    """Each job's interval so `calls_left` is spent evenly over `seconds_left`, never exceeded."""
    seconds_left = max(seconds_left, 0.0)
    most_runs = max(1, math.ceil(seconds_left / min_interval))
    calls = float(max(calls_left, 0))
    active = [job for job in jobs if job.cost > 0 and job.weight > 0]
    shares = _water_fill(active, calls, most_runs)
    # A share too small for one run is wasted: drop the job furthest from affording one and share
    # again, so the last calls of a period go to a job that can use them.
    while active:
        short = [job for job in active if shares[job.name] < job.cost]
        if not short:
            break
        active.remove(min(short, key=lambda job: shares[job.name] / job.cost))
        shares = {job.name: 0.0 for job in jobs} | _water_fill(active, calls, most_runs)
    plans: dict[str, JobPlan] = {}
    for job in jobs:
        if job.cost <= 0:  # nothing to call (e.g. no lock known yet): look again soon
            plans[job.name] = JobPlan(job.name, min_interval, 0.0, most_runs)
            continue
        share = shares.get(job.name, 0.0)
        runs = math.floor(share / job.cost + 1e-9)
        if runs < 1:
            reason = (f"budget used up: {max(calls_left, 0)} call(s) left to scheduled jobs "
                      "this period" if calls_left < job.cost else
                      f"the {max(calls_left, 0)} call(s) left this period are planned for jobs "
                      f"with more weight (a run costs ~{job.cost:.0f})")
            plans[job.name] = JobPlan(job.name, None, share, 0, reason, job.cost)
            continue
        # runs + 1 gaps: the last planned run falls before the period ends, not on its edge.
        interval = min(max(seconds_left / (runs + 1), min_interval), max_interval)
        plans[job.name] = JobPlan(job.name, interval, share, runs, None, job.cost)
    return plans

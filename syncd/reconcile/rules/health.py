"""Pure rules for syncd's own health: a job failing N runs in a row, the NeoLock subscription lost."""

from __future__ import annotations

import dataclasses

from syncd.reconcile.findings import Finding, Thresholds

HEALTH_KINDS = frozenset({"job_failing", "subscription_lost"})


@dataclasses.dataclass(frozen=True)
class JobRuns:
    """A job's latest finished runs, newest first (at most `job_failures` of them)."""

    job: str
    statuses: tuple[str, ...]
    last_error: str | None = None


@dataclasses.dataclass(frozen=True)
class SubscriptionRow:
    """What ops.subscriptions holds for a provider (status, the base URL registered)."""

    provider: str
    status: str
    public_url: str
    last_error: str | None = None


def job_findings(runs: JobRuns, th: Thresholds) -> list[Finding]:
    """`job_failing` when the latest `job_failures` runs all failed."""
    recent = runs.statuses[: th.job_failures]
    if len(recent) < th.job_failures or any(status != "failed" for status in recent):
        return []
    return [Finding("job_failing", runs.job, "warning", "ok",
                    f"failed {th.job_failures} runs in a row",
                    {"last_error": (runs.last_error or "")[:300]})]


def subscription_findings(row: SubscriptionRow | None, expected_base: str | None,
                          provider: str = "neolock") -> list[Finding]:
    """`subscription_lost` when the registered subscription failed, was deleted or points elsewhere.

    No row yet means syncd has not registered (first start), which is not a loss; no expected
    base (no `server.public_url`) means there is nothing to compare against.
    """
    if row is None or expected_base is None:
        return []
    if row.status != "registered":
        return [Finding("subscription_lost", provider, "critical", f"registered {expected_base}",
                        row.status, {"last_error": (row.last_error or "")[:300]}, provider)]
    if row.public_url != expected_base:
        return [Finding("subscription_lost", provider, "critical", f"registered {expected_base}",
                        f"points at {row.public_url}", {}, provider)]
    return []

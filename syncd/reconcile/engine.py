"""One reconcile: run every enabled rule set, plan, and merge the findings into drift cases.

The merge is set-based (see `syncd.db.drift.merge`): findings are staged with COPY and four
statements refresh, open, resolve and announce cases (escalations, reminders), queueing their
alerts in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import structlog

from syncd.db import drift
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.reconcile.findings import SEVERITY_RANK, Finding
from syncd.reconcile.plan import Policy, plan_for
from syncd.reconcile.rulesets import RULE_SETS, RuleSet
from syncd.settings.core import Settings

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """What one reconcile found and changed."""

    findings: list[Finding]
    plans: dict[tuple[str, str], dict[str, Any]]
    merge: drift.Merge
    failed: dict[str, str]  # rule set → error, for rule sets that could not load


def policy(settings: Settings) -> Policy:
    """What remediation may do on its own, from `[reconcile]`."""
    return Policy(allow_unlock=settings.reconcile.allow_unlock,
                  allow_complete=settings.reconcile.allow_complete)


def dedupe(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per (kind, subject): the most severe (a device at two providers, say)."""
    best: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        key = (finding.kind, finding.subject)
        if key not in best or SEVERITY_RANK[finding.severity] > SEVERITY_RANK[best[key].severity]:
            best[key] = finding
    return list(best.values())


async def reconcile(db: Database, settings: Settings, now: dt.datetime,
                    rule_sets: Sequence[RuleSet] = RULE_SETS) -> Reconciled:
    """Evaluate the enabled rule sets at `now` and merge their findings into ops.drift."""
    found: list[Finding] = []
    kinds: set[str] = set()
    failed: dict[str, str] = {}
    for rule_set in rule_sets:
        if not rule_set.enabled(settings):
            continue
        try:
            found += await rule_set.find(db, settings, now)
        except DatabaseUnavailable:
            raise
        except SyncdError as err:  # its cases stay as they are: neither opened nor resolved
            failed[rule_set.name] = str(err)
            continue
        kinds |= rule_set.kinds
    found = [f for f in dedupe(found) if f.kind in kinds]
    rules = policy(settings)
    plans = {(f.kind, f.subject): p for f in found if (p := plan_for(f, rules)) is not None}
    records = [(f.kind, f.subject, f.provider, f.severity, f.expected, f.actual, f.detail,
                plans.get((f.kind, f.subject)), f.opens) for f in found]
    conf = settings.reconcile
    merged = await drift.merge(
        db, records, sorted(kinds), now,
        seen_resolution=dt.timedelta(seconds=conf.seen_resolution_seconds),
        alert_rank=SEVERITY_RANK[conf.alert_min_severity],
        renotify=dt.timedelta(hours=conf.renotify_hours))
    if merged.opened or merged.resolved or merged.escalated or merged.reminded:
        log.info("reconcile.cases", opened=merged.opened, resolved=merged.resolved,
                 updated=merged.updated, escalated=merged.escalated, reminded=merged.reminded,
                 alerts=merged.alerts)
    return Reconciled(found, plans, merged, failed)

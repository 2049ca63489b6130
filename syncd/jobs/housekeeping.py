"""Built-in database housekeeping: prunes old run records."""

from __future__ import annotations

from syncd.db import ops
from syncd.sync.base import RunContext

RETAIN_DAYS = 30
INBOX_DAYS = 7  # also the duplicate-push window: at least 72 hours
REPLICA_DAYS = 7  # replicas silent this long (stopped or dead) are forgotten, but the latest daemon


class HousekeepingJob:
    """Prunes finished job runs (30 days, keeping each job's latest 100), inbox events (7 days),
    quarantine, finished alerts and remediation claims (30 days), and replicas gone for 7 days."""

    name = "housekeeping"
    default_interval = 3600.0

    async def run(self, ctx: RunContext) -> None:
        """Prune ops.sync_runs, ops.inbox, ops.quarantine, delivered alerts (ops.outbox),
        ops.remediation_claims and ops.replicas."""
        for query, days in (("sync_runs_prune", RETAIN_DAYS), ("inbox_prune", INBOX_DAYS),
                            ("quarantine_prune", RETAIN_DAYS), ("outbox_prune", RETAIN_DAYS),
                            ("remediation_claims_prune", RETAIN_DAYS),
                            ("replicas_prune", REPLICA_DAYS)):
            ctx.add_items(await ops.prune(ctx.db, query, float(days)))

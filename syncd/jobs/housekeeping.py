"""Built-in database housekeeping: prunes old run records."""

from __future__ import annotations

from syncd.jobs.base import RunContext

RETAIN_DAYS = 30


class HousekeepingJob:
    """Deletes finished job runs older than 30 days (keeping each job's latest 100)."""

    name = "housekeeping"
    default_interval = 3600.0

    async def run(self, ctx: RunContext) -> None:
        """Prune ops.sync_runs."""
        status = await ctx.db.execute("sync_runs_prune", float(RETAIN_DAYS))
        ctx.add_items(int(status.split()[-1]))

"""The job abstraction every scheduled pull uses, and the context a run is given."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from syncd.db.pool import Database
from syncd.vendors.usage import Usage

ProgressCallback = Callable[[int, int | None], None]


@dataclasses.dataclass
class RunContext:
    """What one job run is handed: the database and counters the run reports back.

    Vendor requests are not reported by the job: every attempt VendorHttp sends while the runner
    has `usage` bound is counted there, so runs sharing a client never count each other's.
    """

    db: Database
    job: str
    items: int = 0
    on_progress: ProgressCallback | None = None
    usage: Usage = dataclasses.field(default_factory=Usage)

    @property
    def requests(self) -> int:
        """Vendor requests this run sent (retries and token calls included)."""
        return self.usage.requests

    def add_items(self, count: int) -> None:
        """Count items written or examined by this run."""
        self.items += count

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress (drives the CLI's progress bar)."""
        if self.on_progress is not None:
            self.on_progress(done, total)


class Job(Protocol):
    """A unit of scheduled work. `run` raises a SyncdError on failure; whatever it committed stays."""

    name: str
    default_interval: float  # seconds between runs unless configured

    async def run(self, ctx: RunContext) -> None:
        """Do one run, reporting items/requests/progress through `ctx`."""


@runtime_checkable
class Gated(Protocol):
    """A job that plans its own runs (e.g. under a vendor's call quota) and ticks more often than
    it works: `not_due()` says why this tick has nothing to do (None: run now). The runner asks
    before it records a run, so idle ticks leave no rows in `ops.sync_runs`."""

    async def not_due(self) -> str | None:
        """Why this tick does nothing, or None when the job should run now."""

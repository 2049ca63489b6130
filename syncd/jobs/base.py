"""The job abstraction every scheduled pull uses, and the context a run is given."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from syncd.db.pool import Database

ProgressCallback = Callable[[int, int | None], None]


@dataclasses.dataclass
class RunContext:
    """What one job run is handed: the database and counters the run reports back."""

    db: Database
    job: str
    items: int = 0
    requests: int = 0
    on_progress: ProgressCallback | None = None

    def add_items(self, count: int) -> None:
        """Count items written or examined by this run."""
        self.items += count

    def add_requests(self, count: int) -> None:
        """Count vendor requests made by this run (retries included)."""
        self.requests += count

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

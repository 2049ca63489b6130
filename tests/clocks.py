"""The clock tests share with a simulator and a client: wall time plus an offset the test moves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class WallClock:
    """Wall time shifted by `offset` seconds; a test moves it forward by adding to `offset`."""

    def __init__(self) -> None:
        self.offset = 0.0

    def unix(self) -> float:
        """Unix time, shifted."""
        return time.time() + self.offset

    def __call__(self) -> float:
        """Unix time, shifted (so the clock itself can be passed as a `clock=` callable)."""
        return self.unix()

    def now(self) -> datetime:
        """Aware UTC datetime, shifted."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

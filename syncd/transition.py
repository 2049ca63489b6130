"""Log transitions, not every failure: one line when something starts failing, one when it
recovers, with how many failures were not logged in between. Shared below every package."""

from __future__ import annotations

from typing import Any, Literal


class Transition:
    """Remembers whether a thing is failing; logs only the changes."""

    def __init__(self, logger: Any, failing: str, recovered: str, *,
                 level: Literal["warning", "error"] = "warning",
                 already_failing: bool = False) -> None:
        self.logger = logger
        self.failing_event = failing
        self.recovered_event = recovered
        self.level = level
        self.is_failing = already_failing
        self.unlogged = 0  # failures since the transition that were counted, not logged

    def fail(self, **fields: Any) -> bool:
        """Note a failure; log it only if it starts a failing spell. True when it logged."""
        if self.is_failing:
            self.unlogged += 1
            return False
        self.is_failing, self.unlogged = True, 0
        getattr(self.logger, self.level)(self.failing_event, **fields)
        return True

    def ok(self, **fields: Any) -> bool:
        """Note a success; log it only if it ends a failing spell. True when it logged."""
        if not self.is_failing:
            return False
        self.is_failing = False
        self.logger.info(self.recovered_event, failures_not_logged=self.unlogged, **fields)
        self.unlogged = 0
        return True

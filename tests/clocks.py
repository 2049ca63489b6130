"""The one clock tests hand to simulators and to syncd, which only the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# An arbitrary instant, for a clock that only has to stand still until the test moves it.
FIXED = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Clock:
    """Frozen at `start` or, without one, wall time; either way shifted by what the test moved it.

    One object serves every shape of clock the code under test takes: `now` (an aware UTC
    datetime), `unix` (seconds), or the clock itself (called, it answers `unix`).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start
        self.offset = timedelta(0)

    def _base(self) -> datetime:
        return self.start if self.start is not None else datetime.now(UTC)

    def now(self) -> datetime:
        """The clock's time: an aware UTC datetime."""
        return self._base() + self.offset

    def unix(self) -> float:
        """The clock's time in seconds since the Unix epoch."""
        return self.now().timestamp()

    def __call__(self) -> float:
        """`unix`, so the clock itself can be passed as a `clock=` callable."""
        return self.unix()

    def advance(self, **delta: float) -> None:
        """Move the clock forward (the arguments of `timedelta`: seconds=, minutes=, hours=…)."""
        self.offset += timedelta(**delta)

    def move_to(self, when: datetime) -> None:
        """Make the clock read `when` now (a frozen clock then stays there)."""
        self.offset = when - self._base()

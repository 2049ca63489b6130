"""The one retry/backoff policy: exponential, capped, jittered. Shared below every package.

Used by the vendor HTTP layer (full jitter: many callers of one vendor spread out), the inbox
worker's persisted retry delays, the database wait at start and the restart of a crashed
background task (half jitter: a delay never collapses to ~0, yet replicas that failed together
retry apart, not in lock-step).

Why not stamina or tenacity: those wrap "call f until it succeeds", which fits only the database
wait. The inbox delay is stored in PostgreSQL (next_attempt_at), not slept, and the HTTP loop
decides per status and honours Retry-After; all three need the same formula, which is a few lines.
"""

from __future__ import annotations

import dataclasses
import random

_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number `attempt` (0-based): uniform in [floor·d, d], d = min(cap, base·2ⁿ).

    `floor` 0 is "full jitter", 0.5 "equal jitter" (AWS Architecture Blog, 2015).
    """

    base: float
    cap: float
    floor: float = 0.0

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.cap >= 0 and 0.0 <= self.floor <= 1.0):
            raise ValueError("Backoff needs base >= 0, cap >= 0 and 0 <= floor <= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay for `attempt` (no jitter)."""
        return float(min(self.cap, self.base * 2 ** min(max(attempt, 0), 60)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A jittered delay for `attempt`."""
        top = self.ceiling(attempt)
        return (rng or _RNG).uniform(self.floor * top, top)


INBOX_RETRY = Backoff(base=2.0, cap=600.0, floor=0.5)  # 1–2 s, 2–4 s, … at most 5–10 min
DATABASE_WAIT = Backoff(base=0.25, cap=5.0, floor=0.5)
TASK_RESTART = Backoff(base=1.0, cap=60.0, floor=0.5)  # 0.5–1 s, 1–2 s, … at most 30–60 s

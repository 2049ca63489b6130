"""What a rule produces: a `Finding`, and the thresholds every rule reads (pure data, no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One disagreement: `kind` + `subject` name the case; the rest describes it.

    `subject` is the thing itself, plainly (a device uid, a terminal sn, a job name).
    `detail` must be stable while nothing changes (timestamps, not ages): a change rewrites the case.
    `opens=False` says "disagreeing, but maybe a command in flight": an open case stays open (no
    resolve/reopen churn when a re-read resets the clock), and no new case is opened yet.
    """

    kind: str
    subject: str
    severity: Severity
    expected: str | None
    actual: str | None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    provider: str | None = None
    opens: bool = True  # False within a grace window: keeps an open case open, opens none


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The `[reconcile]` thresholds and grace windows, as timedeltas."""

    grace: dt.timedelta = dt.timedelta(minutes=10)
    transitional: dt.timedelta = dt.timedelta(hours=1)
    licence: dt.timedelta = dt.timedelta(days=14)
    terminal_offline: dt.timedelta = dt.timedelta(hours=1)
    online_window: dt.timedelta = dt.timedelta(minutes=10)
    job_failures: int = 3


def iso(value: dt.datetime | None) -> str | None:
    """An aware datetime as ISO 8601 (UTC), or None."""
    return None if value is None else value.astimezone(dt.UTC).isoformat()

"""Pure rules for BioTime attendance terminals: server-local times, and which terminals are online.

`is_online` is mirrored by the SQL function `vendor.terminal_online` (migration 0003), which the
`report.terminals` view evaluates against `now()` so that "online" stays true over time; a test
checks that both give the same answers.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

ONLINE_STATE = 1  # BioTime's terminal `state` for a connected terminal


def server_time(value: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """A BioTime time (naive, server-local) as an aware UTC datetime.

    Naive times get the server's zone with fold=0: in a DST fall-back hour, the repeated
    wall-clock time is read as the first (summer-time) instant; in a spring-forward gap, the
    non-existent time is read with the offset in force before the gap. A time that already carries
    an offset is kept as that instant.
    """
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=zone, fold=0)
    return aware.astimezone(dt.UTC)


def is_online(state: int | None, last_activity: dt.datetime | None, now: dt.datetime,
              window: dt.timedelta) -> bool:
    """True when the server says state 1 and last heard from the terminal within `window` of `now`.

    "Within" counts either side of `now`: a last activity further in the future than the window
    means a wrong `biotime.timezone` or a wrong server clock, which must not read as online.
    """
    if state != ONLINE_STATE or last_activity is None:
        return False
    return abs(now - last_activity) <= window

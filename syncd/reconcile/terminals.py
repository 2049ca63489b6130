"""Pure rules for BioTime attendance terminals: which terminals are online.

`is_online` is mirrored by the SQL function `vendor.terminal_online` (migration 0003), which the
`report.terminals` view evaluates against `now()` so that "online" stays true over time; a test
checks that both give the same answers.
"""

from __future__ import annotations

import datetime as dt

ONLINE_STATE = 1  # BioTime's terminal `state` for a connected terminal


def is_online(state: int | None, last_activity: dt.datetime | None, now: dt.datetime,
              window: dt.timedelta) -> bool:
    """True when the server says state 1 and last heard from the terminal within `window` of `now`.

    "Within" counts either side of `now`: a last activity further in the future than the window
    means a wrong `biotime.timezone` or a wrong server clock, which must not read as online.
    """
    if state != ONLINE_STATE or last_activity is None:
        return False
    return abs(now - last_activity) <= window

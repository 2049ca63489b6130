"""The pure terminal rules: server-local times to instants, and the online rule in Python and SQL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from syncd.db.pool import Database
from syncd.vendors.biotime.models import is_online, server_time

ZONE = "Asia/Tashkent"

ONLINE_CASES = [  # (state, seconds since last activity, window seconds)
    (1, 0, 600), (1, 599, 600), (1, 600, 600), (1, 601, 600), (2, 0, 600), (None, 0, 600),
    (1, None, 600), (1, -300, 600), (1, -5 * 3600, 600), (0, 10, 600), (1, 3000, 3600),
]


async def test_the_sql_online_rule_agrees_with_the_python_rule(db: Database) -> None:
    """vendor.terminal_online gives the same answer as is_online, including at the window's edge."""
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    answers = []
    async with db.connection() as conn:
        for state, age, window in ONLINE_CASES:
            last = None if age is None else now - dt.timedelta(seconds=age)
            in_sql = await conn.fetchval("SELECT vendor.terminal_online($1, $2, $3, $4)",
                                         state, last, now, dt.timedelta(seconds=window))
            assert in_sql is is_online(state, last, now, dt.timedelta(seconds=window)), (state, age)
            answers.append(in_sql)
    assert answers == [True, True, True, False, False, False, False, True, False, False, True]


def test_server_times_use_the_zone_and_fold_0_around_dst() -> None:
    """Naive server times get the configured zone; a repeated DST hour reads as its first instant,
    a skipped one with the offset before the gap; a time with an offset is kept."""
    berlin = ZoneInfo("Europe/Berlin")
    tashkent = ZoneInfo(ZONE)
    utc = dt.UTC
    assert server_time(dt.datetime(2024, 5, 1, 15, 0), tashkent) == \
        dt.datetime(2024, 5, 1, 10, 0, tzinfo=utc)
    assert server_time(dt.datetime(2024, 10, 27, 2, 30), berlin) == \
        dt.datetime(2024, 10, 27, 0, 30, tzinfo=utc)
    assert server_time(dt.datetime(2024, 3, 31, 2, 30), berlin) == \
        dt.datetime(2024, 3, 31, 1, 30, tzinfo=utc)
    aware = dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert server_time(aware, berlin) == dt.datetime(2024, 5, 1, 7, 0, tzinfo=utc)
    assert server_time(None, berlin) is None



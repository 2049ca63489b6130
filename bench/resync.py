"""`resync`: rows written when the same 100k devices are synced again with nothing changed.

syncd's upsert skips rows whose data is unchanged (`WHERE … IS DISTINCT FROM`) and refreshes
`last_seen_at` only once per seen_granularity, so the second sync, ten minutes after the first,
should write nothing: no new row versions, no dead tuples. pg_stat_user_tables confirms what
UpsertResult says. A control run with 1% of the devices changed shows the skip is not blind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time

from bench.common import Postgres, Report
from bench.fleet import device_records, now, table_writes
from syncd.db.pool import Database
from syncd.db.upsert import UpsertResult, upsert
from syncd.sync.neolock import PHONES

ROWS = 100_000
CHANGED = 1_000
LATER = dt.timedelta(minutes=10)
STATE = PHONES.columns.index("vendor_state")


def _deltas(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


async def run(pg: Postgres) -> Report:
    """Sync 100k devices, sync them again unchanged, and count what the second sync wrote."""
    records = await asyncio.to_thread(device_records, ROWS)
    changed = [(*r[:STATE], "Locked" if r[STATE] != "Locked" else "Enrolled", *r[STATE + 1:])
               if i % (ROWS // CHANGED) == 0 else r for i, r in enumerate(records)]
    first_at = now()
    async with pg.database("resync") as dsn:
        db = await Database.connect(dsn, min_size=1, max_size=1)
        try:
            async with db.connection() as conn:
                began = time.perf_counter()
                async with conn.transaction():
                    first = await upsert(conn, PHONES, records, first_at)
                first_s = time.perf_counter() - began
                before = await table_writes(conn, "vendor.phones")
                began = time.perf_counter()
                async with conn.transaction():
                    again = await upsert(conn, PHONES, records, first_at + LATER)
                again_s = time.perf_counter() - began
                stats = _deltas(before, await table_writes(conn, "vendor.phones"))
                before = await table_writes(conn, "vendor.phones")
                async with conn.transaction():
                    control: UpsertResult = await upsert(conn, PHONES, changed, first_at + 2 * LATER)
                control_stats = _deltas(before, await table_writes(conn, "vendor.phones"))
        finally:
            await db.close()
    if first.inserted != ROWS:
        raise RuntimeError(f"the first sync inserted {first.inserted} rows, not {ROWS}")
    clean = again.written == 0 and stats["n_tup_ins"] == 0 and stats["n_tup_upd"] == 0
    control_ok = dataclasses.astuple(control) == (0, CHANGED, 0) and \
        control_stats["n_tup_upd"] == CHANGED
    return Report("resync_rows_written", str(again.written), "0", clean and control_ok, [
        f"UpsertResult inserted {again.inserted}, updated {again.updated}; pg_stat_user_tables "
        f"vendor.phones: n_tup_ins +{stats['n_tup_ins']}, n_tup_upd +{stats['n_tup_upd']} "
        f"(hot +{stats['n_tup_hot_upd']}), n_dead_tup +{stats['n_dead_tup']}",
        f"re-sync of {ROWS:,} unchanged devices {LATER.seconds // 60} min later took {again_s:.2f} s "
        f"(first sync {first_s:.2f} s)",
        f"control: {CHANGED:,} devices changed -> updated {control.updated}, inserted "
        f"{control.inserted}, n_tup_upd +{control_stats['n_tup_upd']} "
        f"({'ok' if control_ok else 'WRONG'})",
    ])

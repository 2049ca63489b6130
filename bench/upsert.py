"""`upsert`: syncd's bulk upsert of 100k devices against a raw COPY of the same rows.

Both write the same records into the same emptied vendor.phones (primary key in place) in one
transaction, commit included, after a CHECKPOINT so neither pays for the other's dirty pages. The
upsert is syncd.db.upsert.upsert() with the PHONES spec, as the devices job calls it; the COPY
is copy_records_to_table() with the bookkeeping columns filled in. Best of ROUNDS for each.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import Postgres, Report
from bench.fleet import device_records, now, raw_bytes
from syncd.db.pool import Connection, Database
from syncd.db.upsert import upsert
from syncd.sync.neolock import PHONES

ROWS = 100_000
ROUNDS = 2
TARGET = 0.4
BOOKKEEPING = ("first_seen_at", "last_seen_at", "last_changed_at", "gone_at")


async def _fresh(conn: Connection) -> None:
    await conn.execute("TRUNCATE vendor.phones")
    await conn.execute("CHECKPOINT")


async def run(pg: Postgres) -> Report:
    """Time upsert() and COPY of the same 100k records; report copy_seconds / upsert_seconds."""
    records = await asyncio.to_thread(device_records, ROWS)
    seen_at = now()
    copied = [(*r, seen_at, seen_at, seen_at, None) for r in records]
    columns = (*PHONES.columns, *BOOKKEEPING)
    copy_times: list[float] = []
    upsert_times: list[float] = []
    async with pg.database("upsert") as dsn:
        db = await Database.connect(dsn, min_size=1, max_size=1)
        try:
            async with db.connection() as conn:
                for _ in range(ROUNDS):
                    await _fresh(conn)
                    began = time.perf_counter()
                    async with conn.transaction():
                        await conn.copy_records_to_table("phones", schema_name="vendor",
                                                         records=copied, columns=columns)
                    copy_times.append(time.perf_counter() - began)
                    await _fresh(conn)
                    began = time.perf_counter()
                    async with conn.transaction():
                        result = await upsert(conn, PHONES, records, seen_at)
                    upsert_times.append(time.perf_counter() - began)
                    if result.inserted != ROWS:
                        raise RuntimeError(f"upsert inserted {result.inserted} rows, not {ROWS}")
        finally:
            await db.close()
    copy_s, upsert_s = min(copy_times), min(upsert_times)
    ratio = copy_s / upsert_s
    return Report("upsert_vs_copy", f"{ratio:.2f}", f"≥ {TARGET}", ratio >= TARGET, [
        f"copy {copy_s:.2f} s ({ROWS / copy_s:,.0f} rows/s), upsert {upsert_s:.2f} s "
        f"({ROWS / upsert_s:,.0f} rows/s); best of {ROUNDS}, into an empty vendor.phones",
        f"{ROWS:,} devices, raw jsonb {raw_bytes(records):.0f} bytes on average",
    ])

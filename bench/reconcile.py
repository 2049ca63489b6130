"""`reconcile`: reconcile of N contracts against N vendor rows (1 % drifting) vs a bare SQL join.

Both sides read the same tables in the same database, one after the other, warm. The bare side is
what any reconcile must at least do: a join of contracts with vendor.phones keeping the rows whose
state is not the settled one, plus the two anti-joins (contracts without a device, devices without
a contract), fetched to the client. The reconcile side is `syncd.reconcile.engine.reconcile()` with
the phones and health rule sets, as the job runs it: the candidate SQL, the pure rules, staging the
findings with COPY and the set-based merge into ops.drift with the outbox alerts. Reported:

- headline: a reconcile with nothing changed (writes no rows: checked), the run every schedule
  repeats, best of ROUNDS interleaved with the bare query, / the best bare query;
- detail: the first reconcile (opens one case and one alert per drifting contract) / bare query.

N defaults to 1,000,000 (`BENCH_RECONCILE_ROWS` sets it, e.g. 100000 for a quick look).
"""

from __future__ import annotations

import datetime as dt
import os
import time

from bench.common import Postgres, Report
from syncd.db.pool import Database
from syncd.reconcile.engine import reconcile
from syncd.settings.core import Settings

ROWS = int(os.environ.get("BENCH_RECONCILE_ROWS", "1000000"))
DRIFT_EVERY = 100  # 1 %
TARGET = 2.0
ROUNDS = 3

_SEED = f"""
INSERT INTO local.phone_contracts (device_uid, desired_state, updated_at)
SELECT 'dev-' || i, CASE WHEN i % 3 = 0 THEN 'locked' ELSE 'active' END,
       now() - interval '30 days'
FROM generate_series(1, {ROWS}) AS i;
INSERT INTO vendor.phones (provider, device_uid, vendor_state, license_expiry, raw, first_seen_at,
                           last_seen_at, last_changed_at)
SELECT 'neolock', 'dev-' || i,
       CASE WHEN (i % 3 = 0) <> (i % {DRIFT_EVERY} = 0) THEN 'Locked' ELSE 'Enrolled' END,
       now() + interval '365 days', '{{}}', now() - interval '30 days',
       now() - interval '30 days', now() - interval '30 days'
FROM generate_series(1, {ROWS}) AS i;
"""

_BARE = (
    """SELECT c.device_uid, c.desired_state, p.vendor_state
       FROM local.phone_contracts c JOIN vendor.phones p ON p.device_uid = c.device_uid
       WHERE NOT CASE c.desired_state WHEN 'locked' THEN p.vendor_state = 'Locked'
                                      WHEN 'active' THEN p.vendor_state IN ('Enrolled', 'Blinked')
                                      ELSE p.vendor_state = 'Completed' END""",
    """SELECT c.device_uid FROM local.phone_contracts c
       WHERE NOT EXISTS (SELECT 1 FROM vendor.phones p WHERE p.device_uid = c.device_uid)""",
    """SELECT p.device_uid FROM vendor.phones p
       WHERE NOT EXISTS (SELECT 1 FROM local.phone_contracts c WHERE c.device_uid = p.device_uid)""",
)


async def _bare(db: Database) -> tuple[float, int]:
    began = time.perf_counter()
    found = 0
    async with db.connection() as conn:
        for query in _BARE:
            found += len(await conn.fetch(query))
    return time.perf_counter() - began, found


async def run(pg: Postgres) -> Report:
    """Seed N contracts and N devices (1 % drifting); time reconcile and the bare join, twice."""
    settings = Settings(neolock={"base_url": "http://127.0.0.1:9/api", "login": "bench",
                                 "password": "bench"})
    async with pg.database("reconcile") as dsn:
        db = await Database.connect(dsn, min_size=1, max_size=2, command_timeout=600)
        try:
            async with db.connection() as conn:
                await conn.execute(_SEED)
                await conn.execute("VACUUM ANALYZE local.phone_contracts")
                await conn.execute("VACUUM ANALYZE vendor.phones")
            await _bare(db)  # warm the cache for both sides
            bare_times = [(await _bare(db))[0]]
            began = time.perf_counter()
            first = await reconcile(db, settings, dt.datetime.now(dt.UTC))
            first_s = time.perf_counter() - began
            steady_times: list[float] = []
            written = 0
            for _ in range(ROUNDS):  # interleaved, so both sides see the same machine load
                bare_s, bare_rows = await _bare(db)
                bare_times.append(bare_s)
                began = time.perf_counter()
                again = await reconcile(db, settings, dt.datetime.now(dt.UTC))
                steady_times.append(time.perf_counter() - began)
                written += again.merge.written
        finally:
            await db.close()
    expected = ROWS // DRIFT_EVERY
    if first.merge.opened != expected or written != 0:
        raise RuntimeError(f"opened {first.merge.opened} (expected {expected}), later runs wrote "
                           f"{written}")
    bare, steady = min(bare_times), min(steady_times)
    ratio = steady / bare
    return Report("reconcile_vs_bare_join", f"{ratio:.2f}×", f"≤ {TARGET}×", ratio <= TARGET, [
        f"{ROWS:,} contracts × {ROWS:,} vendor rows, {expected:,} drifting; bare join/anti-joins "
        f"{bare:.2f} s ({bare_rows:,} rows fetched)",
        f"reconcile with nothing changed {steady:.2f} s (best of {ROUNDS}, interleaved with the "
        f"bare query; 0 rows written)",
        f"first reconcile {first_s:.2f} s ({first_s / bare:.2f}× the bare query: "
        f"{first.merge.opened:,} cases and {first.merge.alerts:,} alerts written)",
    ])

"""The bulk upsert: new, changed and unchanged rows, repeated keys, and complete listings."""

from __future__ import annotations

import datetime as dt

from syncd.db.pool import Database
from syncd.db.upsert import UpsertSpec, upsert

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def test_a_key_repeated_in_one_call_keeps_its_last_record(db: Database) -> None:
    """Two records for one key in a batch do not fail the statement; the last one is stored."""
    spec = UpsertSpec("vendor.phones", key=("provider", "device_uid"),
                      columns=("provider", "device_uid", "vendor_state", "raw"))
    records = [("neolock", "a", "Enrolled", {"n": 1}), ("neolock", "b", "Locked", {}),
               ("neolock", "a", "Locked", {"n": 2})]
    async with db.transaction() as conn:
        result = await upsert(conn, spec, records, T0)
    assert (result.inserted, result.updated) == (2, 0)
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT vendor_state, raw FROM vendor.phones WHERE device_uid = 'a'")
    assert row is not None and (row["vendor_state"], row["raw"]) == ("Locked", {"n": 2})


async def test_only_changed_rows_are_written_and_absent_ones_go_on_a_complete_listing(
        db: Database) -> None:
    """Unchanged rows are skipped, changed ones updated, and a complete listing marks the rest gone."""
    spec = UpsertSpec("vendor.phones", key=("provider", "device_uid"),
                      columns=("provider", "device_uid", "vendor_state", "raw"))
    first: list[tuple[str, str, str, dict[str, int]]] = [
        ("neolock", u, "Enrolled", {}) for u in ("a", "b", "c")]
    async with db.transaction() as conn:
        assert (await upsert(conn, spec, first, T0)).written == 3
    later = T0 + dt.timedelta(minutes=5)
    second: list[tuple[str, str, str, dict[str, int]]] = [
        ("neolock", "a", "Enrolled", {}), ("neolock", "b", "Locked", {})]
    async with db.transaction() as conn:
        result = await upsert(conn, spec, second, later, complete=True)
    assert (result.inserted, result.updated, result.gone) == (0, 1, 1)
    async with db.connection() as conn:
        gone = await conn.fetch("SELECT device_uid FROM vendor.phones WHERE gone_at IS NOT NULL")
    assert [r["device_uid"] for r in gone] == ["c"]

"""Bulk upsert of vendor snapshots: COPY into a temp table, then one INSERT … ON CONFLICT.

Rows whose data did not change are not written at all (`… WHERE … IS DISTINCT FROM`), so a
re-sync with no changes writes no rows and leaves no dead tuples. `last_seen_at` is therefore
refreshed only when a row changes or when the stored value is older than `seen_granularity`:
precise enough for "when did a vendor last list this", without rewriting every row every run.

Every target table has the bookkeeping columns `first_seen_at`, `last_seen_at`,
`last_changed_at` (timestamptz) and `gone_at` (timestamptz, NULL while the vendor lists it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Connection, translate


@dataclasses.dataclass(frozen=True)
class UpsertSpec:
    """Where a snapshot goes: table, key columns and data columns (identifiers are trusted)."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]  # every data column, key columns included, in record order
    seen_granularity: dt.timedelta = dt.timedelta(hours=1)

    def __post_init__(self) -> None:
        for name in (self.table, *self.columns):
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"not a plain SQL identifier: {name!r}")
        if not set(self.key) <= set(self.columns):
            raise ValueError("key columns must be among the columns")

    @property
    def stage(self) -> str:
        """Name of the session's temp staging table."""
        return "stage_" + self.table.replace(".", "_")

    def merge_sql(self) -> str:
        """INSERT … ON CONFLICT that writes only new or changed rows; returns one row per write."""
        cols = ", ".join(self.columns)
        data = [c for c in self.columns if c not in self.key]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in data)
        old = ", ".join(f"t.{c}" for c in data) or "NULL"
        new = ", ".join(f"EXCLUDED.{c}" for c in data) or "NULL"
        return (
            f"INSERT INTO {self.table} AS t ({cols}, first_seen_at, last_seen_at, last_changed_at, "
            f"gone_at) SELECT {cols}, $1, $1, $1, NULL FROM {self.stage} "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET "
            f"{sets + ', ' if sets else ''}"
            "last_seen_at = EXCLUDED.last_seen_at, gone_at = NULL, "
            f"last_changed_at = CASE WHEN ROW({old}) IS DISTINCT FROM ROW({new}) "
            "THEN EXCLUDED.last_changed_at ELSE t.last_changed_at END "
            f"WHERE ROW({old}) IS DISTINCT FROM ROW({new}) OR t.gone_at IS NOT NULL "
            "OR t.last_seen_at < EXCLUDED.last_seen_at - $2::interval "
            "RETURNING (xmax = 0) AS inserted"
        )

    def gone_sql(self) -> str:
        """Mark rows absent from the staged complete listing as gone (only call for complete ones)."""
        key = ", ".join(self.key)
        return (f"UPDATE {self.table} SET gone_at = $1 WHERE gone_at IS NULL AND ({key}) NOT IN "
                f"(SELECT {key} FROM {self.stage})")


@dataclasses.dataclass(frozen=True)
class UpsertResult:
    """What one upsert wrote."""

    inserted: int = 0
    updated: int = 0
    gone: int = 0

    @property
    def written(self) -> int:
        """Rows inserted, updated or marked gone."""
        return self.inserted + self.updated + self.gone


async def upsert(conn: Connection, spec: UpsertSpec, records: Sequence[Sequence[Any]],
                 seen_at: dt.datetime, *, complete: bool = False) -> UpsertResult:
    """Stage `records` with COPY and merge them; run inside the caller's transaction.

    `complete=True` says the records are the vendor's whole listing: rows not in it are marked
    gone. Never pass it for a failed, partial or paged-in-pieces listing. A key given twice
    (a vendor repeating a row within a page) keeps its last record: ON CONFLICT would otherwise
    refuse the whole statement.
    """
    key_at = [spec.columns.index(k) for k in spec.key]
    unique = {tuple(record[i] for i in key_at): record for record in records}
    if len(unique) < len(records):
        records = list(unique.values())
    with translate():
        # Only the data columns, without the target's constraints; rows vanish at commit.
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {spec.stage} ON COMMIT DELETE ROWS "
                           f"AS SELECT {', '.join(spec.columns)} FROM {spec.table} WITH NO DATA")
        await conn.execute(f"TRUNCATE {spec.stage}")
        if records:
            await conn.copy_records_to_table(spec.stage, records=records, columns=spec.columns)
        rows = await conn.fetch(spec.merge_sql(), seen_at, spec.seen_granularity)
        gone = 0
        if complete:
            status = await conn.execute(spec.gone_sql(), seen_at)
            gone = int(status.split()[-1])
    inserted = sum(1 for r in rows if r["inserted"])
    return UpsertResult(inserted=inserted, updated=len(rows) - inserted, gone=gone)

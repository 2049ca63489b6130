"""vendor.phones records as syncd writes them, built from the NeoLock simulator's seeded fleet."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from typing import Any

from syncd.db.pool import Connection
from syncd.devtools.simulators.kg_core import Fleet
from syncd.devtools.simulators.neolock import device_json
from syncd.sync.neolock import PHONES, device_record
from syncd.vendors.neolock.models import Device

Record = tuple[Any, ...]


@functools.cache
def device_records(count: int, seed: int = 7) -> tuple[Record, ...]:
    """`count` rows in PHONES.columns order: each device's GET answer parsed and stored as syncd does.

    The raw jsonb is the simulator's full device object (~500 bytes), as a real sync stores it.
    """
    fleet = Fleet(seed=seed, devices=count, transition_delay=0)
    return tuple(device_record(Device.model_validate(device_json(d))) for d in fleet.devices.values())


def raw_bytes(records: Sequence[Record]) -> float:
    """Mean size of the raw jsonb documents, in bytes of compact JSON."""
    sample = records[: min(len(records), 1000)]
    raw = PHONES.columns.index("raw")
    return sum(len(json.dumps(r[raw], separators=(",", ":"))) for r in sample) / max(len(sample), 1)


async def table_writes(conn: Connection, table: str) -> dict[str, int]:
    """n_tup_ins/upd/hot_upd/del and n_dead_tup of `table`, with this session's counts flushed first.

    Since PostgreSQL 15 a backend reports its counts when it goes idle, at most once a second;
    pg_stat_force_next_flush() makes it do so right after the current statement.
    """
    schema, name = table.split(".")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup "
        "FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2", schema, name)
    if row is None:
        raise RuntimeError(f"no statistics for {table}")
    return {key: int(value) for key, value in row.items()}


def now() -> dt.datetime:
    """The current time, timezone-aware."""
    return dt.datetime.now(dt.UTC)

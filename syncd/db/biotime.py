"""BioTime's named queries (sql/queries/biotime.sql), each behind one typed function."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from syncd.db import ops
from syncd.db.pool import Connection, Database, translate
from syncd.db.queries import get as sql

PUNCH_CURSOR = "biotime-punches"


@dataclasses.dataclass(frozen=True)
class TerminalReport:
    """One row of report.terminals, as `syncd terminals list` shows it."""

    sn: str
    alias: str | None
    area_name: str | None
    area_code: str | None
    ip_address: str | None
    state: int | None
    online: bool
    last_activity: dt.datetime | None
    expected: bool
    last_seen_at: dt.datetime | None
    gone_at: dt.datetime | None
    status: str
    expected_alias: str | None


async def present_terminals(db: Database) -> dict[str, int]:
    """Serial number → BioTime id of every terminal not marked gone."""
    return {r["sn"]: r["terminal_id"] for r in await db.fetch("biotime_terminals_present")}


async def terminal_ids(db: Database, sns: Sequence[str]) -> dict[str, int]:
    """Serial number → BioTime id for those of `sns` that the vendor lists (not gone)."""
    return {r["sn"]: r["terminal_id"] for r in await db.fetch("biotime_terminal_ids", list(sns))}


async def set_rules(conn: Connection, window: dt.timedelta, timezone: str) -> None:
    """Store the online window and server zone report.terminals uses (a no-op when unchanged)."""
    with translate():
        await conn.execute(sql("biotime_rules_set"), window, timezone)


async def terminals_report(db: Database) -> list[TerminalReport]:
    """Every row of report.terminals, problems first."""
    return [TerminalReport(**dict(r)) for r in await db.fetch("biotime_terminals_report")]


async def command_started(db: Database, sn: str, terminal_id: int | None, command: str,
                          requested_by: str) -> int:
    """Record a terminal command as pending; return its ledger id."""
    return int(await db.fetchval("biotime_command_start", sn, terminal_id, command, requested_by))


async def command_finished(db: Database, command_id: int, ok: bool, error: str | None) -> None:
    """Record the outcome of a ledgered terminal command."""
    await db.execute("biotime_command_finish", command_id, "ok" if ok else "failed", error)


async def punch_cursor(db: Database) -> int | None:
    """The highest punch id stored so far by biotime-punches, if any."""
    last = (await ops.get_cursor(db, PUNCH_CURSOR)).get("last_id")
    return int(last) if isinstance(last, int) else None


async def set_punch_cursor(conn: Connection, last_id: int) -> None:
    """Store the punch cursor (inside the transaction that writes the punches it covers)."""
    with translate():
        await ops.set_cursor(conn, PUNCH_CURSOR, {"last_id": last_id})

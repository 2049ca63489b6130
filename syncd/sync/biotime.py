"""BioTime pull jobs: terminal states (`biotime-terminals`) and attendance punches (`biotime-punches`).

The terminal listing is small, so it is read in full first and written afterwards, in one
transaction: a failed or partial listing writes nothing at all. Only a listing read to its end
may mark terminals gone, and even then a terminal is marked gone only when a GET of its id answers
404: page-numbered listings skip a row when another is deleted while they are being read.

Punches are read by id (ids grow in upload order, so late uploads are caught) and every batch is
committed together with the cursor that covers it.

Times come without a zone, in the server's local time: `biotime.timezone` makes them aware (see
`syncd.vendors.biotime.models.server_time` for DST handling).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import structlog

from syncd.db import biotime as queries
from syncd.db.pool import Database
from syncd.db.upsert import UpsertResult, UpsertSpec, upsert
from syncd.errors import VendorFault
from syncd.settings.vendors import BioTimeSettings
from syncd.sync.base import RunContext
from syncd.sync.refresh import confirm_each
from syncd.vendors.biotime import BioTimeClient, Terminal, Transaction
from syncd.vendors.biotime.models import is_online, server_time
from syncd.vendors.pacing import RetryPolicy

log = structlog.get_logger(__name__)
VENDOR = "biotime"

TERMINALS = UpsertSpec("vendor.terminals", key=("sn",), columns=(
    "sn", "terminal_id", "alias", "ip_address", "state", "terminal_tz", "area_id", "area_code",
    "area_name", "last_activity", "terminal_name", "fw_ver", "push_ver", "user_count", "fp_count",
    "face_count", "palm_count", "transaction_count", "is_attendance", "raw"))
PUNCHES = UpsertSpec("vendor.punches", key=("id",), columns=(
    "id", "emp_code", "punch_time", "punch_state", "verify_type", "work_code", "terminal_sn",
    "terminal_alias", "area_alias", "upload_time", "raw"))


def biotime_client(settings: BioTimeSettings, http_session: aiohttp.ClientSession, *,
                   retry: RetryPolicy | None = None) -> BioTimeClient:
    """A BioTime client for this configuration (JWT login, or a static token)."""
    return BioTimeClient(http_session, str(settings.base_url), username=settings.username,
                         password=settings.password, token=settings.token,
                         concurrency=settings.concurrency, page_size=settings.page_size,
                         paging=settings.paging, retry=retry)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def terminal_record(terminal: Terminal, zone: ZoneInfo) -> tuple[Any, ...]:
    """A terminal as a vendor.terminals row (in TERMINALS.columns order)."""
    area = terminal.area
    return (
        terminal.sn.strip(), terminal.id, terminal.alias, terminal.ip_address, terminal.state,
        terminal.terminal_tz, area.id if area else None, area.code if area else None,
        terminal.area_name or (area.name if area else None),
        server_time(terminal.last_activity, zone), terminal.terminal_name, terminal.fw_ver,
        terminal.push_ver, terminal.user_count, terminal.fp_count, terminal.face_count,
        terminal.palm_count, terminal.transaction_count, terminal.is_attendance,
        terminal.model_dump(mode="json", by_alias=True),
    )


def index_listing(terminals: Iterable[Terminal],
                  into: dict[str, Terminal] | None = None) -> dict[str, Terminal]:
    """The listing by serial number; a serial number or id given to two terminals is a VendorFault.

    A terminal listed twice (the same id and serial number: pages shifted while being read) is
    kept once.
    """
    by_sn = {} if into is None else into
    by_id = {t.id: sn for sn, t in by_sn.items()}
    for terminal in terminals:
        sn = terminal.sn.strip()
        if not sn:
            raise VendorFault(VENDOR, f"terminal id {terminal.id} has a blank serial number")
        other = by_sn.get(sn)
        if other is not None and other.id != terminal.id:
            raise VendorFault(VENDOR, f"terminal listing gives serial number {sn!r} to ids "
                                      f"{other.id} and {terminal.id}")
        if by_id.get(terminal.id, sn) != sn:
            raise VendorFault(VENDOR, f"terminal listing gives id {terminal.id} to serial numbers "
                                      f"{by_id[terminal.id]!r} and {sn!r}")
        by_sn[sn] = terminal
        by_id[terminal.id] = sn
    return by_sn


class BioTimeTerminalsJob:
    """`biotime-terminals`: the complete terminal listing into vendor.terminals, in one transaction."""

    name = "biotime-terminals"
    default_interval = 300.0

    def __init__(self, db: Database, client: BioTimeClient, settings: BioTimeSettings) -> None:
        self.db = db
        self.client = client
        self.zone = ZoneInfo(settings.timezone)
        self.timezone = settings.timezone
        self.window = dt.timedelta(seconds=settings.online_window_seconds)

    async def run(self, ctx: RunContext) -> None:
        """Read every terminal, confirm the ones that vanished, then write it all at once."""
        listing = await self._read_listing(ctx)
        confirmed = await self._recheck_missing(listing)
        seen_at = _now()
        records = [terminal_record(t, self.zone) for t in listing.values()]
        async with self.db.transaction() as conn:
            result = await upsert(conn, TERMINALS, records, seen_at, complete=True)
            await queries.set_rules(conn, self.window, self.timezone)
        ctx.add_items(len(records))
        self._log(listing.values(), result, confirmed, seen_at)

    async def _read_listing(self, ctx: RunContext) -> dict[str, Terminal]:
        terminals: list[Terminal] = []
        async for terminal in self.client.iter_terminals():
            terminals.append(terminal)
            ctx.progress(len(terminals))
        return index_listing(terminals)

    async def _recheck_missing(self, listing: dict[str, Terminal]) -> int:
        """GET each stored terminal the listing lacks; add those that still exist. Returns how many."""
        missing = [tid for sn, tid in (await queries.present_terminals(self.db)).items()
                   if sn not in listing]
        found = [t for t in await confirm_each(self.client.get_terminal, missing)
                 if t is not None]
        index_listing(found, listing)
        return len(found)

    def _log(self, listing: Iterable[Terminal], result: UpsertResult, confirmed: int,
             now: dt.datetime) -> None:
        seen = [(t.state, server_time(t.last_activity, self.zone)) for t in listing]
        online = sum(is_online(state, last, now, self.window) for state, last in seen)
        ahead = sum(1 for _, last in seen if last is not None and last > now + self.window)
        log.info("biotime.terminals", listed=len(seen), online=online, inserted=result.inserted,
                 updated=result.updated, gone=result.gone, kept_by_get=confirmed,
                 activity_in_future=ahead)


def punch_record(punch: Transaction, zone: ZoneInfo) -> tuple[Any, ...]:
    """A punch as a vendor.punches row (in PUNCHES.columns order)."""
    return (punch.id, punch.emp_code, server_time(punch.punch_time, zone), punch.punch_state,
            punch.verify_type, punch.work_code, punch.terminal_sn, punch.terminal_alias,
            punch.area_alias, server_time(punch.upload_time, zone),
            punch.model_dump(mode="json", by_alias=True))


class BioTimePunchesJob:
    """`biotime-punches`: punches by id since the cursor (less a lookback), batch and cursor in one txn.

    The lookback re-reads the last `lookback_ids` ids, for punches whose ids were assigned before
    but committed after those the previous run saw; re-read rows that did not change are not
    written again.
    """

    name = "biotime-punches"
    default_interval = 300.0

    def __init__(self, db: Database, client: BioTimeClient, settings: BioTimeSettings, *,
                 lookback_ids: int = 200, batch: int | None = None) -> None:
        self.db = db
        self.client = client
        self.zone = ZoneInfo(settings.timezone)
        self.lookback_ids = lookback_ids
        self.batch = batch or settings.page_size

    async def run(self, ctx: RunContext) -> None:
        """Read punches after the cursor and store them batch by batch."""
        cursor = await queries.punch_cursor(self.db)
        start = None if cursor is None else max(cursor - self.lookback_ids, 0)
        # The cursor advances with each batch only while ids arrive in ascending order; a server
        # that ignores `ordering=id` gets its cursor moved once, at the end of a complete read.
        ascending, highest, last = True, cursor or 0, 0
        pending: list[Transaction] = []
        async for punch in self.client.iter_transactions(after_id=start):
            ascending = ascending and punch.id > last
            last = punch.id
            highest = max(highest, punch.id)
            pending.append(punch)
            if len(pending) >= self.batch:
                await self._store(pending, highest if ascending else cursor, ctx)
                pending = []
        await self._store(pending, highest or None, ctx)

    async def _store(self, punches: list[Transaction], cursor: int | None, ctx: RunContext) -> None:
        async with self.db.transaction() as conn:
            if punches:
                await upsert(conn, PUNCHES, [punch_record(p, self.zone) for p in punches], _now())
            if cursor is not None:
                await queries.set_punch_cursor(conn, cursor)
        ctx.add_items(len(punches))
        ctx.progress(ctx.items)

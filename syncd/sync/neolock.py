"""NeoLock pull jobs and the device refresh they share with the push worker.

A GET of the device is the truth; pushes and the uploads listing only say which devices to re-read.
Every batch of rows is committed together with its cursor, so a failed run keeps what it wrote and
the next run resumes. `neolock-uploads` lives in `syncd.sync.neolock_uploads`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog

from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.db.upsert import UpsertResult, UpsertSpec, upsert
from syncd.errors import VendorError, VendorFault, VendorNotFound
from syncd.jobs.base import RunContext
from syncd.settings import NeoLockSettings
from syncd.sync.neolock_uploads import NeoLockUploadsJob
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import Device

log = structlog.get_logger(__name__)
PROVIDER = "neolock"
__all__ = ["NeoLockDevicesJob", "NeoLockUploadsJob", "Refresh", "neolock_client", "refresh", "store"]

PHONES = UpsertSpec("vendor.phones", key=("provider", "device_uid"), columns=(
    "provider", "device_uid", "object_id", "imei", "imei2", "vendor_state", "license_expiry",
    "vendor_modified_at", "raw"))

def neolock_client(settings: NeoLockSettings, session: aiohttp.ClientSession) -> NeoLockClient:
    """A NeoLock client for this configuration."""
    return NeoLockClient(session, str(settings.base_url), settings.login, settings.password,
                         rate=settings.rate_limit)


def device_record(device: Device) -> tuple[Any, ...]:
    """A device as a vendor.phones row (in PHONES.columns order)."""
    return (PROVIDER, device.device_uid, device.object_id, device.imei, device.imei2,
            device.status, device.license_expiry, device.modified_at,
            device.raw())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Refresh:
    """The outcome of re-reading a set of devices."""

    devices: list[Device] = dataclasses.field(default_factory=list)
    gone: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


async def refresh(client: NeoLockClient, uids: Sequence[str], concurrency: int = 16) -> Refresh:
    """GET each device (bounded concurrency; the client paces to the rate limit)."""
    result = Refresh()
    queue = list(reversed(uids))

    async def worker() -> None:
        while queue:
            uid = queue.pop()
            try:
                result.devices.append(await client.get_device(uid))
            except VendorNotFound:
                result.gone.append(uid)
            except VendorError as err:
                result.failed[uid] = str(err)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(uids)) or 1)))
    return result


async def store(db: Database, found: Refresh, *, cursor: tuple[str, dict[str, Any]] | None = None,
                seen_at: dt.datetime | None = None) -> UpsertResult:
    """Write refreshed devices, and mark 404'd ones gone, in one transaction (with the cursor)."""
    seen_at = seen_at or _now()
    async with db.transaction() as conn:
        result = await upsert(conn, PHONES, [device_record(d) for d in found.devices], seen_at)
        gone = 0
        if found.gone:
            gone = await phones.mark_gone(conn, PROVIDER, found.gone, seen_at)
        await phones.detail_read(conn, PROVIDER, [d.device_uid for d in found.devices]
                                 + found.gone, seen_at)
        if cursor is not None:
            await ops.set_cursor(conn, *cursor)
    return dataclasses.replace(result, gone=gone)


class NeoLockDevicesJob:
    """`neolock-devices`: GETs the known devices that need it, in committed batches.

    Known devices: those already in vendor.phones, those in uploads, and those under contract.
    The uploads listing carries every device's state (see `neolock_uploads`): a device no GET has
    described yet takes its listed state first, and a pass does not GET every device: only those
    never stored, those listed differently since their last GET,
    those named by a push whose refresh failed, and those whose detail (licence expiry, firmware,
    …) is older than `detail_max_age` (each device at its own point between half and all of that
    age, so the reads spread over the day). The GET stays the truth where the two disagree.
    Memory stays constant: device ids are scanned in keyset batches, never all at once.
    """

    name = "neolock-devices"
    default_interval = 3600.0

    def __init__(self, db: Database, client: NeoLockClient, *, batch: int = 500,
                 concurrency: int = 16, scan: int = 5000,
                 detail_max_age: dt.timedelta = dt.timedelta(hours=24)) -> None:
        self.db = db
        self.client = client
        self.batch = batch
        self.concurrency = concurrency
        self.scan = max(scan, batch)
        self.detail_max_age = detail_max_age

    async def run(self, ctx: RunContext) -> None:
        """GET every device that is due; devices that fail are left as they were, never gone."""
        before = self.client.requests
        after = str((await ops.get_cursor(self.db, self.name)).get("after", ""))
        total = await phones.known_neolock_devices(self.db)
        now = _now()
        adopted = await phones.adopt_listed_neolock(self.db, now)
        pushed = await phones.failed_push_subjects(self.db, now - self.detail_max_age)
        failed: dict[str, str] = {}
        scanned = 0
        try:
            while True:
                # One id more than the scan says whether another scan follows: a pass ends,
                # and the cursor goes back to the start, however the fleet size divides.
                known = await phones.neolock_devices_scan(self.db, after, self.scan + 1, now,
                                                          self.detail_max_age, pushed)
                last = len(known) <= self.scan
                known = known[: self.scan]
                due = [uid for uid, is_due in known if is_due]
                for start in range(0, len(due), self.batch):
                    # Within a scan, the cursor stays at its start until the scan is done.
                    chunk = due[start:start + self.batch]
                    found = await refresh(self.client, chunk, self.concurrency)
                    failed.update(found.failed)
                    result = await store(self.db, found)
                    ctx.add_items(len(found.devices) + result.gone)
                    ctx.progress(scanned + start + len(chunk), total)
                scanned += len(known)
                after = "" if last else known[-1][0]
                async with self.db.transaction() as conn:
                    await ops.set_cursor(conn, self.name, {"after": after})
                ctx.progress(scanned, total)
                if last:
                    break
        finally:
            ctx.add_requests(self.client.requests - before)
        log.info("neolock.devices", known=total, scanned=scanned, listed_state=adopted,
                 got=ctx.items, failed=len(failed))
        if failed:
            sample = "; ".join(f"{uid}: {err}" for uid, err in list(failed.items())[:3])
            raise VendorFault(PROVIDER, f"{len(failed)} device(s) could not be read ({sample})")

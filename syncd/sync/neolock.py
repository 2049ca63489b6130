"""NeoLock pull jobs and the device refresh they share with the push worker.

A GET of the device is the truth; pushes only say which devices to re-read. Every page of rows is
committed together with its cursor, so a failed run keeps what it wrote and the next run resumes.
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
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import Device, Upload

log = structlog.get_logger(__name__)
PROVIDER = "neolock"

PHONES = UpsertSpec("vendor.phones", key=("provider", "device_uid"), columns=(
    "provider", "device_uid", "object_id", "imei", "imei2", "vendor_state", "license_expiry",
    "vendor_modified_at", "raw"))
UPLOADS = UpsertSpec("vendor.phone_uploads", key=("provider", "device_uid", "upload_id"), columns=(
    "provider", "device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model",
    "upload_status", "status", "raw"))


def neolock_client(settings: NeoLockSettings, session: aiohttp.ClientSession) -> NeoLockClient:
    """A NeoLock client for this configuration."""
    return NeoLockClient(session, str(settings.base_url), settings.login, settings.password,
                         rate=settings.rate_limit)


def device_record(device: Device) -> tuple[Any, ...]:
    """A device as a vendor.phones row (in PHONES.columns order)."""
    return (PROVIDER, device.device_uid, device.object_id, device.imei, device.imei2,
            device.status, device.license_expiry, device.modified_at,
            device.raw())


def upload_record(upload: Upload) -> tuple[Any, ...]:
    """An upload row as a vendor.phone_uploads row (in UPLOADS.columns order)."""
    raw = upload.model_dump(mode="json", by_alias=True, exclude_none=False)
    return (PROVIDER, upload.device_uid, upload.upload_id or "", upload.id, upload.imei,
            upload.imei2, upload.serial, upload.model, upload.upload_status, upload.status,
            raw)


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
        if cursor is not None:
            await ops.set_cursor(conn, *cursor)
    return dataclasses.replace(result, gone=gone)


class NeoLockUploadsJob:
    """`neolock-uploads`: pages through uploaded devices; each page commits with its cursor."""

    name = "neolock-uploads"
    default_interval = 900.0

    def __init__(self, db: Database, client: NeoLockClient, page_size: int = 100) -> None:
        self.db = db
        self.client = client
        self.page_size = page_size

    async def run(self, ctx: RunContext) -> None:
        """Resume at the stored page; a page shorter than page_size ends the listing."""
        page_num = int((await ops.get_cursor(self.db, self.name)).get("next_page", 0))
        for _ in range(100_000):
            page = await self.client.get_uploads(page_num, self.page_size)
            last = page.is_last
            next_cursor = {"next_page": 0 if last else page_num + 1}
            async with self.db.transaction() as conn:
                await upsert(conn, UPLOADS, [upload_record(u) for u in page.items], _now())
                await ops.set_cursor(conn, self.name, next_cursor)
            ctx.add_items(len(page.items))
            ctx.progress(ctx.items, None)
            if last:
                return
            page_num += 1
        raise VendorFault(PROVIDER, "uploads did not end within 100000 pages")


class NeoLockDevicesJob:
    """`neolock-devices`: re-reads every known device at the rate limit, in committed batches.

    Known devices: those already in vendor.phones, those in uploads, and those under contract.
    Memory stays constant: device ids are read in keyset batches, never all at once.
    """

    name = "neolock-devices"
    default_interval = 3600.0

    def __init__(self, db: Database, client: NeoLockClient, *, batch: int = 500,
                 concurrency: int = 16) -> None:
        self.db = db
        self.client = client
        self.batch = batch
        self.concurrency = concurrency

    async def run(self, ctx: RunContext) -> None:
        """Refresh every known device; devices that fail are left as they were, never gone."""
        after = str((await ops.get_cursor(self.db, self.name)).get("after", ""))
        total = await phones.known_neolock_devices(self.db)
        failed: dict[str, str] = {}
        while True:
            uids = await phones.known_neolock_devices_after(self.db, after, self.batch)
            if not uids:
                break
            found = await refresh(self.client, uids, self.concurrency)
            failed.update(found.failed)
            last = len(uids) < self.batch
            after = "" if last else uids[-1]
            result = await store(self.db, found, cursor=(self.name, {"after": after}))
            ctx.add_items(len(found.devices) + result.gone)
            ctx.progress(ctx.items + len(failed), total)
            if last:
                break
        if failed:
            sample = "; ".join(f"{uid}: {err}" for uid, err in list(failed.items())[:3])
            raise VendorFault(PROVIDER, f"{len(failed)} device(s) could not be read ({sample})")

"""NeoLock pull jobs: uploads and devices (the device re-read itself is in sync/refresh.py).

A GET of the device is the truth; pushes only say which devices to re-read. Every page of rows is
committed together with its cursor, so a failed run keeps what it wrote and the next run resumes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import structlog

from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.db.upsert import UpsertSpec, upsert
from syncd.errors import VendorFault
from syncd.jobs.base import RunContext
from syncd.settings import NeoLockSettings
from syncd.sync.refresh import PHONES, Refresh, device_record, refresh, store
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import Upload

log = structlog.get_logger(__name__)
PROVIDER = "neolock"
# The device re-read ("GET is truth") lives in sync/refresh.py, shared with the inbox worker.
__all__ = ["PHONES", "Refresh", "device_record", "refresh", "store"]

UPLOADS = UpsertSpec("vendor.phone_uploads", key=("provider", "device_uid", "upload_id"), columns=(
    "provider", "device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model",
    "upload_status", "status", "raw"))


def neolock_client(settings: NeoLockSettings, session: aiohttp.ClientSession) -> NeoLockClient:
    """A NeoLock client for this configuration."""
    return NeoLockClient(session, str(settings.base_url), settings.login, settings.password,
                         rate=settings.rate_limit)


def upload_record(upload: Upload) -> tuple[Any, ...]:
    """An upload row as a vendor.phone_uploads row (in UPLOADS.columns order)."""
    raw = upload.model_dump(mode="json", by_alias=True, exclude_none=False)
    return (PROVIDER, upload.device_uid, upload.upload_id or "", upload.id, upload.imei,
            upload.imei2, upload.serial, upload.model, upload.upload_status, upload.status,
            raw)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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

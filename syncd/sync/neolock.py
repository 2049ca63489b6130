"""NeoLock pull jobs (the device refresh they share with the push worker is in sync/refresh.py).

A GET of the device is the truth; pushes and the uploads listing only say which devices to re-read.
Every batch of rows is committed together with its cursor, so a failed run keeps what it wrote and
the next run resumes. `neolock-uploads` lives in `syncd.sync.neolock_uploads`.
"""

from __future__ import annotations

import datetime as dt

import aiohttp
import structlog

from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.errors import VendorFault
from syncd.settings.vendors import NeoLockSettings
from syncd.sync.base import RunContext
from syncd.sync.neolock_uploads import NeoLockUploadsJob, listing_read
from syncd.sync.refresh import PHONES, Refresh, device_record, refresh, store
from syncd.vendors.neolock.client import NeoLockClient

log = structlog.get_logger(__name__)
PROVIDER = "neolock"
# The device re-read ("GET is truth") lives in sync/refresh.py, shared with the inbox worker.
__all__ = ["PHONES", "NeoLockDevicesJob", "NeoLockUploadsJob", "Refresh", "device_record",
           "neolock_client", "refresh", "store"]


def neolock_client(settings: NeoLockSettings, session: aiohttp.ClientSession) -> NeoLockClient:
    """A NeoLock client for this configuration."""
    return NeoLockClient(session, str(settings.base_url), settings.login, settings.password,
                         rate=settings.rate_limit)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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

    Listed states are adopted scan by scan, just before each scan, so rows the uploads job writes
    while this one runs are adopted, not read one GET each. With `wait_for_listing` (the uploads
    job is enabled), a device known only from a contract, neither stored nor listed, is not read
    until the listing has been read to its end once: on a first start the uploads pass is
    still under way and will most likely list it.
    """

    name = "neolock-devices"
    default_interval = 3600.0

    def __init__(self, db: Database, client: NeoLockClient, *, batch: int = 500,
                 concurrency: int = 16, scan: int = 5000,
                 detail_max_age: dt.timedelta = dt.timedelta(hours=24),
                 wait_for_listing: bool = False) -> None:
        self.db = db
        self.client = client
        self.batch = batch
        self.concurrency = concurrency
        self.scan = max(scan, batch)
        self.detail_max_age = detail_max_age
        self.wait_for_listing = wait_for_listing

    async def run(self, ctx: RunContext) -> None:
        """GET every device that is due; devices that fail are left as they were, never gone."""
        after = str((await ops.get_cursor(self.db, self.name)).get("after", ""))
        total = await phones.known_neolock_devices(self.db)
        now = _now()
        read_unlisted = not self.wait_for_listing or listing_read(
            await ops.get_cursor(self.db, NeoLockUploadsJob.name))
        pushed = await phones.failed_push_subjects(self.db, now - self.detail_max_age)
        failed: dict[str, str] = {}
        scanned = adopted = 0
        while True:
            # The listed devices of this scan's range (at most one per id it covers) take their
            # listed state first, as the listing stands now: an uploads pass may be under way.
            adopted += await phones.adopt_listed_neolock(self.db, now, after, self.scan + 1)
            # One id more than the scan says whether another scan follows: a pass ends,
            # and the cursor goes back to the start, however the fleet size divides.
            known = await phones.neolock_devices_scan(self.db, after, self.scan + 1, now,
                                                      self.detail_max_age, pushed,
                                                      read_unlisted=read_unlisted)
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
        log.info("neolock.devices", known=total, scanned=scanned, listed_state=adopted,
                 got=ctx.items, failed=len(failed), unlisted_read=read_unlisted)
        if failed:
            sample = "; ".join(f"{uid}: {err}" for uid, err in list(failed.items())[:3])
            raise VendorFault(PROVIDER, f"{len(failed)} device(s) could not be read ({sample})")

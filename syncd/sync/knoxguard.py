"""Knox Guard pull jobs: `knox-uploads` and `knox-devices`, into vendor.phone_uploads / vendor.phones.

Both page with {pageNum, pageSize} and, as the doc says, stop at the first page that is not full
(an exact multiple of the page size ends on an empty page). Every page is written together with
the cursor of the next page in one transaction, so a failed run keeps what it wrote and the next
run resumes; the page that ends a pass stores page 0.

A device missing from the listing is marked gone only after a direct check answers that the
tenant does not have it (page-numbered listings skip a row when another is deleted while they are
read), and only after a pass read from its first page to its end in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import structlog

from syncd.db import knoxguard as queries
from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.db.upsert import UpsertSpec, upsert
from syncd.errors import SyncdError, VendorFault
from syncd.settings.vendors import KnoxGuardSettings
from syncd.sync.base import RunContext
from syncd.sync.refresh import confirm_each
from syncd.vendors.knoxguard import Device, KnoxGuardClient, UploadDetail
from syncd.vendors.knoxguard.models import UploadDevice, UploadSummary

log = structlog.get_logger(__name__)
PROVIDER = "knoxguard"
MAX_PAGES = 100_000

PHONES = UpsertSpec("vendor.phones", key=("provider", "device_uid"), columns=(
    "provider", "device_uid", "object_id", "imei", "imei2", "vendor_state", "license_expiry",
    "vendor_modified_at", "raw"))
UPLOADS = UpsertSpec("vendor.phone_uploads", key=("provider", "device_uid", "upload_id"), columns=(
    "provider", "device_uid", "upload_id", "row_id", "imei", "imei2", "serial", "model",
    "upload_status", "status", "raw"))


def knoxguard_client(settings: KnoxGuardSettings, session: aiohttp.ClientSession, *,
                     clock: Callable[[], float] = time.time) -> KnoxGuardClient:
    """A Knox Guard client for this configuration (static token or signed-token flow)."""
    return KnoxGuardClient(
        session, settings.api_url, api_token=settings.api_token, keys=settings.keys,
        client_identifier=settings.client_identifier,
        token_url=None if settings.api_token is not None else settings.token_url,
        token_validity_minutes=settings.token_validity_minutes, rate=settings.rate_limit,
        clock=clock)


def device_record(device: Device) -> tuple[Any, ...]:
    """A device as a vendor.phones row (in PHONES.columns order)."""
    return (PROVIDER, device.device_uid, device.object_id, device.imei, device.imei2,
            device.status, device.license_expiry, device.modified_at, device.raw())


def upload_record(batch: UploadSummary, status: str | None, item: UploadDevice) -> tuple[Any, ...]:
    """One device of an upload batch as a vendor.phone_uploads row (in UPLOADS.columns order)."""
    raw = {**item.model_dump(mode="json", by_alias=True), "uploadId": batch.upload_id,
           "uploadStatus": status}
    return (PROVIDER, item.device_uid, batch.upload_id, None, None, None, None, None, status,
            item.result, raw)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KnoxUploadsJob:
    """`knox-uploads`: upload batches (GET /devices/uploads) and their devices, page by page.

    A batch already stored as Completed with as many devices as the vendor counts is not read
    again, so a re-sync of a settled tenant costs one request per page of batches.
    """

    name = "knox-uploads"
    default_interval = 900.0

    def __init__(self, db: Database, client: KnoxGuardClient, page_size: int = 100,
                 detail_page_size: int = 1000) -> None:
        self.db = db
        self.client = client
        self.page_size = page_size
        self.detail_page_size = detail_page_size

    async def run(self, ctx: RunContext) -> None:
        """Resume at the stored page; a page shorter than page_size ends the pass."""
        page_num = int((await ops.get_cursor(self.db, self.name)).get("next_page", 0))
        settled = await queries.settled_uploads(self.db)
        for _ in range(MAX_PAGES):
            page = await self.client.get_uploads(page_num, self.page_size)
            todo = [b for b in page.items if not (
                b.upload_status == "Completed" and b.total_device_count is not None
                and settled.get(b.upload_id) == b.total_device_count)]
            # Batches are read side by side; the client paces them to the rate limit.
            answers = await asyncio.gather(*(self._batch_records(b) for b in todo),
                                           return_exceptions=True)
            records: list[tuple[Any, ...]] = []
            for answer in answers:
                if isinstance(answer, BaseException):  # nothing of this page is written
                    raise answer
                records += answer
            last = page.is_last
            async with self.db.transaction() as conn:
                await upsert(conn, UPLOADS, records, _now())
                await ops.set_cursor(conn, self.name, {"next_page": 0 if last else page_num + 1})
            ctx.add_items(len(records))
            ctx.progress(ctx.items, None)
            if last:
                return
            page_num += 1
        raise VendorFault(PROVIDER, f"uploads did not end within {MAX_PAGES} pages")

    async def _batch_records(self, batch: UploadSummary) -> list[tuple[Any, ...]]:
        details: list[UploadDetail] = []
        for page_num in range(MAX_PAGES):
            detail = await self.client.get_upload(batch.upload_id, page_num, self.detail_page_size)
            details.append(detail)
            if detail.is_last:
                break
        status = details[-1].status or batch.upload_status
        return [upload_record(batch, status, item) for d in details for item in d.devices]


@dataclasses.dataclass
class _Pass:
    """What one run of knox-devices saw."""

    complete: bool = False  # read from page 0 to a short page in this run
    seen: set[str] = dataclasses.field(default_factory=set)


class KnoxDevicesJob:
    """`knox-devices`: the tenant's device list (POST /devices/list) into vendor.phones."""

    name = "knox-devices"
    default_interval = 3600.0

    def __init__(self, db: Database, client: KnoxGuardClient, page_size: int = 100,
                 concurrency: int = 8) -> None:
        self.db = db
        self.client = client
        self.page_size = page_size
        self.concurrency = concurrency

    async def run(self, ctx: RunContext) -> None:
        """Page through the list, each page committed with its cursor; then confirm the missing."""
        listing = await self._read_pages(ctx)
        if listing.complete:
            await self._confirm_missing(listing.seen, ctx)

    async def _read_pages(self, ctx: RunContext) -> _Pass:
        page_num = int((await ops.get_cursor(self.db, self.name)).get("next_page", 0))
        listing = _Pass()
        first = page_num
        # The next page is requested while this one is written: the vendor call and the
        # database write overlap, and the cursor still moves only with the data it covers.
        upcoming = asyncio.ensure_future(self.client.list_devices(page_num, self.page_size))
        try:
            for _ in range(MAX_PAGES):
                page = await upcoming
                listing.seen.update(d.device_uid for d in page.items)
                last = page.is_last
                if not last:
                    upcoming = asyncio.ensure_future(
                        self.client.list_devices(page_num + 1, self.page_size))
                async with self.db.transaction() as conn:
                    await upsert(conn, PHONES, [device_record(d) for d in page.items], _now())
                    await ops.set_cursor(conn, self.name,
                                         {"next_page": 0 if last else page_num + 1})
                ctx.add_items(len(page.items))
                ctx.progress(ctx.items, page.total_count)
                if last:
                    listing.complete = first == 0
                    return listing
                page_num += 1
            raise VendorFault(PROVIDER, f"device list did not end within {MAX_PAGES} pages")
        finally:
            if not upcoming.done():  # a failed write: the page read ahead is not wanted
                upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, SyncdError):
                await upcoming  # collect its outcome, so no error goes unretrieved

    async def _confirm_missing(self, seen: set[str], ctx: RunContext) -> None:
        """Ask the vendor directly about each stored device the pass did not list."""
        missing = sorted(await queries.present_devices(self.db) - seen)
        if not missing:
            return
        found, gone = await self._check(missing)
        at = _now()
        async with self.db.transaction() as conn:
            await upsert(conn, PHONES, [device_record(d) for d in found], at)
            marked = await phones.mark_gone(conn, PROVIDER, gone, at)
        ctx.add_items(len(found) + marked)
        log.info("knoxguard.devices.missing", missing=len(missing), still_there=len(found),
                 gone=marked)

    async def _check(self, uids: Sequence[str]) -> tuple[list[Device], list[str]]:
        """GET each device; any answer but found or not-found fails the run (nothing marked)."""
        answers = await confirm_each(self.client.get_device, uids, self.concurrency)
        found = [d for d in answers if d is not None]
        gone = [uid for uid, d in zip(uids, answers, strict=True) if d is None]
        return found, gone

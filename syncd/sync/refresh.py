"""The targeted device re-read both the NeoLock pull job and the inbox worker use.

A GET of the device is the truth; a push only says which devices to re-read. Devices that answer
are upserted, devices the vendor no longer knows (404) are marked gone, devices whose read failed
are left exactly as they were; all in one transaction, with the caller's cursor if it has one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.db.upsert import UpsertResult, UpsertSpec, upsert
from syncd.errors import VendorError, VendorNotFound
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import Device

PROVIDER = "neolock"

PHONES = UpsertSpec("vendor.phones", key=("provider", "device_uid"), columns=(
    "provider", "device_uid", "object_id", "imei", "imei2", "vendor_state", "license_expiry",
    "vendor_modified_at", "raw"))
def device_record(device: Device) -> tuple[Any, ...]:
    """A device as a vendor.phones row (in PHONES.columns order)."""
    return (PROVIDER, device.device_uid, device.object_id, device.imei, device.imei2,
            device.status, device.license_expiry, device.modified_at,
            device.raw())


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
    seen_at = seen_at or dt.datetime.now(dt.UTC)
    async with db.transaction() as conn:
        result = await upsert(conn, PHONES, [device_record(d) for d in found.devices], seen_at)
        gone = 0
        if found.gone:
            gone = await phones.mark_gone(conn, PROVIDER, found.gone, seen_at)
        # when a GET last answered for each device: the devices job's due logic reads it
        await phones.detail_read(conn, PROVIDER, [d.device_uid for d in found.devices]
                                 + found.gone, seen_at)
        if cursor is not None:
            await ops.set_cursor(conn, *cursor)
    return dataclasses.replace(result, gone=gone)


K = TypeVar("K")
V = TypeVar("V")


async def confirm_each(get: Callable[[K], Awaitable[V]], keys: Sequence[K],
                       concurrency: int | None = None) -> list[V | None]:
    """GET each key the listing lacked: its answer, or None where the vendor says not found.

    Any other failure raises, so nothing is marked gone on an unconfirmed answer (a deletion
    during paging shifts the pages and hides a different item: only a direct 404 counts).
    """
    slots = asyncio.Semaphore(concurrency) if concurrency else None

    async def one(key: K) -> V | None:
        try:
            if slots is None:
                return await get(key)
            async with slots:
                return await get(key)
        except VendorNotFound:
            return None

    answers = await asyncio.gather(*(one(key) for key in keys), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):  # unconfirmed: the run fails, nothing written
            raise answer
    return [None if isinstance(a, BaseException) else a for a in answers]

"""Typed fronts for the operator's phone queries (sql/queries/phone_actions.sql)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from syncd.db.pool import Database


@dataclasses.dataclass(frozen=True)
class PhoneRow:
    """One row of report.phones for a device, with the stored vendor object."""

    provider: str
    device_uid: str
    imei: str | None
    imei2: str | None
    vendor_state: str | None
    console_state: str | None
    license_expiry: dt.datetime | None
    desired_state: str | None
    in_drift: bool
    last_seen_at: dt.datetime
    gone_at: dt.datetime | None
    last_changed_at: dt.datetime
    object_id: str | None
    raw: dict[str, Any]


async def providers_of(db: Database, device_uid: str) -> list[str]:
    """The providers that list the device (not gone), in name order."""
    return [r["provider"] for r in await db.fetch("phone_providers", device_uid)]


async def phone_rows(db: Database, device_uid: str) -> list[PhoneRow]:
    """The device's report.phones rows at every provider."""
    return [PhoneRow(**{**dict(r), "raw": dict(r["raw"])})
            for r in await db.fetch("phone_report", device_uid)]

"""Codelocks Connect answers as pydantic models (vendor spelling stops here).

Tolerant: unknown fields are kept (`extra="allow"`), since lock objects carry more fields than the
doc lists (LockLocation, LockDescription, UtcBased, …). Times arrive as "yyyy-MM-dd hh:mm[:ss]"
without a zone; they are parsed as naive datetimes and the caller decides their zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NETCODE = "netcode"
UTILITY = "utility"
LOCK_MODELS = ("KL1060", "KL1060C2", "KL1060G3", "KL1550", "K3CONNECT")
INIT_MODELS = ("KL1060", "KL1060C2", "KL1550")


def parse_time(value: Any) -> dt.datetime | None:
    """A vendor time ("2025-03-14 09:30:00", ISO 8601, …) as a datetime; blank is None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a date-time string")
    try:
        return dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a date-time: {value[:40]!r}") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class K3Lock(_Model):
    """A K3Connect lock (list item or detail)."""

    lock_id: str = Field(alias="LockId", min_length=1)
    lock_name: str | None = Field(default=None, alias="LockName")
    battery_status: str | None = Field(default=None, alias="BatteryStatus")
    battery_updated: dt.datetime | None = Field(default=None, alias="BatteryUpdated")
    manufacturer: str | None = Field(default=None, alias="Manufacturer")
    model_name: str | None = Field(default=None, alias="ModelName")
    firmware_version: str | None = Field(default=None, alias="FirmwareVersion")
    timezone: str | None = Field(default=None, alias="Timezone")
    timezone_offset: str | None = Field(default=None, alias="TimezoneOffset")
    dst_start: str | None = Field(default=None, alias="DstStart")
    dst_end: str | None = Field(default=None, alias="DstEnd")
    dst_time: str | None = Field(default=None, alias="DstTime")
    pairing_date: dt.datetime | None = Field(default=None, alias="PairingDate")
    lock_location: str | None = Field(default=None, alias="LockLocation")

    @field_validator("battery_updated", "pairing_date", mode="before")
    @classmethod
    def _times(cls, value: Any) -> dt.datetime | None:
        return parse_time(value)


class AccountInfo(_Model):
    """The K3Connect account behind an access key."""

    email: str | None = None
    spccm_status: str | None = Field(default=None, alias="spccmstatus")


class K3Client(_Model):
    """A smartphone client of a lock; `active_periods` as the vendor sends it (slots "0".."9")."""

    email: str = Field(min_length=1)
    lock_id: str | None = Field(default=None, alias="lockid")
    status: str | None = None
    access_type: str | None = Field(default=None, alias="accesstype")
    active_periods: Any = Field(default=None, alias="activeperiods")


class ClientPage(_Model):
    """One page of a lock's clients and the total count."""

    count: int = Field(ge=0)
    clients: list[K3Client] = Field(default_factory=list)


class AuditEntry(_Model):
    """One audit line of a lock. AuditEntryID grows with arrival at the server."""

    audit_entry_id: int = Field(alias="AuditEntryID")
    lock_id: str | None = Field(default=None, alias="LockID")
    date_entered: dt.datetime = Field(alias="DateEntered")
    entry_type: str = Field(default="", alias="EntryType")
    entry_text: str = Field(default="", alias="EntryText")

    @field_validator("date_entered", mode="before")
    @classmethod
    def _time(cls, value: Any) -> dt.datetime | None:
        return parse_time(value)


class ClientResult(_Model):
    """The answer of a client add/update/suspend/restore/delete."""

    result: str | None = None
    lock_id: str | None = Field(default=None, alias="lockid")
    email: str | None = None


class Duration(_Model):
    """A NetCode duration id (operation=durations)."""

    duration_id: int = Field(alias="DurationID")
    mode: str | None = Field(default=None, alias="Mode")
    sub_mode: str | None = Field(default=None, alias="SubMode")
    days: int = Field(default=0, alias="DurationDays")
    hours: int = Field(default=0, alias="DurationHours")
    lock_models: str | None = Field(default=None, alias="LockModels")


class Mode(_Model):
    """A NetCode mode (operation=modes)."""

    mode: str | None = Field(default=None, alias="Mode")
    sub_mode: str | None = Field(default=None, alias="SubMode")
    lock_models: str | None = Field(default=None, alias="LockModels")


class DurationRule(_Model):
    """A rule for generating a NetCode with a duration."""

    apply_dst: int | None = Field(default=None, alias="ApplyDST")
    convert_to_utc: int | None = Field(default=None, alias="ConvertToUTC")
    restricted_start_time: str | None = Field(default=None, alias="RestrictedStartTime")


class DurationInfo(_Model):
    """One duration id's rules for a lock model."""

    lock_model: str | None = Field(default=None, alias="LockModel")
    duration_id: int = Field(alias="DurationID")
    rules: list[DurationRule] = Field(default_factory=list, alias="Rules")
    duration: list[dict[str, Any]] = Field(default_factory=list, alias="Duration")
    mode: list[dict[str, Any]] = Field(default_factory=list, alias="Mode")


class InitSequence(_Model):
    """A KitLock initialisation sequence (always in UTC)."""

    default_master_code: str | None = Field(default=None, alias="DefaultMastercode")
    format: str | None = Field(default=None, alias="InitSeqFormat")
    format_description: str | None = Field(default=None, alias="InitSeqFormatDesc")
    sequence: str = Field(alias="InitSeq")
    time_code: str | None = Field(default=None, alias="TimeCode")


class NetCode(_Model):
    """A generated NetCode. `code` is the value wanted (ActualNetcode)."""

    start: str | None = Field(default=None, alias="Startdate")
    duration_hours: int | None = Field(default=None, alias="DurationHours")
    duration_days: int | None = Field(default=None, alias="DurationDays")
    mode: str | None = Field(default=None, alias="Mode")
    sub_mode: str | None = Field(default=None, alias="SubMode")
    timecode: str | None = Field(default=None, alias="Timecode")
    code: str = Field(alias="ActualNetcode", min_length=1, repr=False)
    result_status: str | None = Field(default=None, alias="Resultstatus")
    lock_id: str | None = Field(default=None, alias="LockId")
    expires: dt.datetime | None = Field(default=None, alias="Expires")
    start_data: dict[str, Any] | None = Field(default=None, alias="Startdata")

    @field_validator("expires", mode="before")
    @classmethod
    def _time(cls, value: Any) -> dt.datetime | None:
        return parse_time(value)

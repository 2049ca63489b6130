"""ZKTeco BioTime answers as typed, bounded models (the server's answers are untrusted input).

Numbers sent as strings are accepted (`"state": "1"` -> 1) and numbers are accepted where text is
expected (an `sn` sent as a number). Every string, count and range is bounded: an absurd value
fails validation, which the client reports as `VendorFault`. Times are naive, as sent: the server's
local zone is applied by the caller. Fields the docs do not list are kept as extras.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CONFIG = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True,
                     str_max_length=4096)
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]
Text = Annotated[str, Field(max_length=255)]


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class BioModel(BaseModel):
    """Base of BioTime models: extras kept, lax numbers, bounded strings."""

    model_config = _CONFIG


class Area(BioModel):
    """The area a terminal belongs to."""

    id: Id | None = None
    code: Text | None = Field(default=None, alias="area_code")
    name: Text | None = Field(default=None, alias="area_name")


class Terminal(BioModel):
    """An attendance terminal (GET /iclock/api/terminals/)."""

    id: Id
    sn: str = Field(min_length=1, max_length=64)
    alias: Text | None = None
    ip_address: str | None = Field(default=None, max_length=64)
    state: int | None = Field(default=None, ge=0, le=1000)
    terminal_tz: int | None = Field(default=None, ge=-24, le=24)
    last_activity: datetime | None = None
    area: Area | None = None
    area_name: Text | None = None
    terminal_name: Text | None = None
    fw_ver: Text | None = None
    push_ver: Text | None = None
    user_count: Count | None = None
    fp_count: Count | None = None
    face_count: Count | None = None
    palm_count: Count | None = None
    transaction_count: Count | None = None
    transfer_interval: int | None = Field(default=None, ge=0, le=1_000_000)
    is_attendance: int | None = Field(default=None, ge=0, le=1000)

    @field_validator("last_activity", "state", "terminal_tz", "ip_address", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("area", mode="before")
    @classmethod
    def _area(cls, value: Any) -> Any:
        """Some servers send the area as its id or its name instead of an object."""
        if isinstance(value, int) and not isinstance(value, bool):
            return {"id": value}
        if isinstance(value, str):
            return {"id": int(value)} if value.isdigit() else {"area_name": value}
        return value

    @property
    def area_code(self) -> str | None:
        """The area's code, if known."""
        return self.area.code if self.area else None


class Transaction(BioModel):
    """One punch (GET /iclock/api/transactions/); `id` grows in upload order."""

    id: Id
    emp_code: str = Field(min_length=1, max_length=64)
    punch_time: datetime
    punch_state: Text | None = None
    verify_type: int | None = Field(default=None, ge=0, le=1000)
    work_code: Text | None = None
    terminal_sn: str | None = Field(default=None, max_length=64)
    terminal_alias: Text | None = None
    area_alias: Text | None = None
    upload_time: datetime | None = None

    @field_validator("upload_time", "punch_state", "terminal_sn", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_to_none(value)


class Page(BioModel):
    """A list envelope: `{count, next, previous, msg, code, data}` (older servers: `results`)."""

    count: Count | None = None
    next: str | None = Field(default=None, max_length=4096)
    previous: str | None = Field(default=None, max_length=4096)
    msg: str | None = None
    code: int | None = None
    data: list[Any] | None = Field(default=None, max_length=100_000)
    results: list[Any] | None = Field(default=None, max_length=100_000)

    @property
    def rows(self) -> list[Any]:
        """The page's items, wherever the server put them."""
        return self.data if self.data is not None else (self.results or [])


class CommandResult(BioModel):
    """The outcome of a terminal command (reboot, upload_transaction, clear_command, …)."""

    action: str
    terminals: list[int]
    code: int = 0
    msg: str | None = None
    data: Any = None

    @property
    def ok(self) -> bool:
        """True when the server accepted the command."""
        return self.code == 0


def server_time(value: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """A BioTime time (naive, server-local) as an aware UTC datetime.

    Naive times get the server's zone with fold=0: in a DST fall-back hour, the repeated
    wall-clock time is read as the first (summer-time) instant; in a spring-forward gap, the
    non-existent time is read with the offset in force before the gap. A time that already carries
    an offset is kept as that instant.
    """
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=zone, fold=0)
    return aware.astimezone(dt.UTC)


ONLINE_STATE = 1  # BioTime's terminal `state` for a connected terminal


def is_online(state: int | None, last_activity: dt.datetime | None, now: dt.datetime,
              window: dt.timedelta) -> bool:
    """True when the server says state 1 and last heard from the terminal within `window` of `now`.

    "Within" counts either side of `now`: a last activity further in the future than the window
    means a wrong `biotime.timezone` or a wrong server clock, which must not read as online.
    """
    if state != ONLINE_STATE or last_activity is None:
        return False
    return abs(now - last_activity) <= window

"""NeoLock's answers as typed models. Vendor camelCase stops here: fields are snake_case + alias.

Every model tolerates fields the docs do not list (kept as extras). `Device.raw()` returns the
device object exactly as the vendor sent it, for storing verbatim.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import (
    Annotated,
    Any,
    Required,  # pydantic needs this one before Python 3.12
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

_CONFIG = ConfigDict(extra="allow", populate_by_name=True)
_SUCCESS_RESULTS = ("", "SUCCESS", "OK")


def _millis(value: Any) -> Any:
    """Vendor timestamps are epoch milliseconds; 0 or empty means unset."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    return value


class NeoModel(BaseModel):
    """Base of NeoLock models: extra fields allowed, fields settable by name or alias."""

    model_config = _CONFIG


class AccessToken(NeoModel):
    """The answer of GET /clients/token: `data.access_token` (or the token at top level)."""

    access_token: SecretStr = Field(min_length=1, max_length=16384)
    expires_in: float | None = Field(default=None, ge=0, le=10 * 365 * 86400)


class ActionResult(NeoModel):
    """The answer of a device action (approve, lock, unlock, complete, delete, sendMessage)."""

    result: str | None = None
    object_id: str | None = Field(default=None, alias="objectId", max_length=256)
    requested_id: str | None = Field(default=None, alias="requestedId", max_length=256)
    transaction_id: str | None = Field(default=None, alias="transactionId", max_length=256)
    code: int | str | None = None
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        """True unless the vendor said otherwise."""
        return (self.result or "").upper() in _SUCCESS_RESULTS


class OfflineLockPin(ActionResult):
    """The answer of POST /clients/devices/offlineDeviceLockPin."""

    pin_number: list[str] = Field(default_factory=list, alias="pinNumber", max_length=64)


class InvalidReason(NeoModel):
    """Why one device of an upload was refused."""

    device_uid: str | None = Field(default=None, alias="deviceUid")
    reason: str | None = None


class UploadResult(NeoModel):
    """The answer of POST /clients/devices/uploads."""

    result: str | None = None
    upload_id: str | None = Field(default=None, alias="uploadId")
    upload_status: str | None = Field(default=None, alias="uploadStatus")
    total_device_count: int | None = Field(default=None, alias="totalDeviceCount", ge=0)
    valid_device_count: int | None = Field(default=None, alias="validDeviceCount", ge=0)
    invalid_device_count: int | None = Field(default=None, alias="invalidDeviceCount", ge=0)
    invalid_reasons: list[InvalidReason] = Field(default_factory=list, alias="invalidReasons")


class Upload(NeoModel):
    """One row of GET /clients/devices/uploads."""

    id: int | None = None
    device_uid: str = Field(alias="deviceUid", min_length=1, max_length=128)
    imei: str | None = Field(default=None, max_length=64)
    imei2: str | None = Field(default=None, max_length=64)
    serial: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=256)
    upload_id: str | None = Field(default=None, alias="uploadID")
    upload_status: str | None = Field(default=None, alias="uploadStatus")
    status: str | None = Field(default=None, max_length=64)


class UploadRow(TypedDict, total=False):
    """One row of GET /clients/devices/uploads exactly as the vendor sent it (camelCase keys).

    Bulk syncs validate a whole page against this shape at once (`UPLOAD_ROWS`) and store the rows
    verbatim, leaving the column extraction to the database: no model object per row. Extra keys
    are allowed (and kept in what is stored).
    """

    id: int | None
    deviceUid: Required[Annotated[str, StringConstraints(min_length=1, max_length=128)]]
    imei: Annotated[str, StringConstraints(max_length=64)] | None
    imei2: Annotated[str, StringConstraints(max_length=64)] | None
    serial: Annotated[str, StringConstraints(max_length=128)] | None
    model: Annotated[str, StringConstraints(max_length=256)] | None
    uploadID: str | None
    uploadStatus: str | None
    status: Annotated[str, StringConstraints(max_length=64)] | None


UPLOAD_ROWS: TypeAdapter[list[UploadRow]] = TypeAdapter(list[UploadRow])


@dataclasses.dataclass(frozen=True, slots=True)
class RawUploadPage:
    """One page of uploads, validated against `UploadRow` and kept as the vendor's JSON text.

    `rows_at` says where the list of rows sits in `body`: keys joined by "/" ("" when the body is
    the list itself). A bulk sync hands `body` to the database as it came, which extracts the
    columns, so no Python object is built per row.
    """

    page_num: int
    page_size: int
    count: int
    body: str = dataclasses.field(repr=False)
    rows_at: str

    @property
    def is_last(self) -> bool:
        """True when the page was not full: no page follows it."""
        return self.count < self.page_size


class UploadPage(NeoModel):
    """One page of uploads, numbered from 0."""

    page_num: int
    page_size: int
    items: list[Upload]

    @property
    def is_last(self) -> bool:
        """True when the page was not full: no page follows it."""
        return len(self.items) < self.page_size


class Device(NeoModel):
    """A device as GET /clients/devices/{deviceUid} describes it (`status`: a Knox Guard state)."""

    device_uid: str = Field(alias="deviceUid", min_length=1, max_length=128)
    object_id: str | None = Field(default=None, alias="objectId")
    status: str | None = Field(default=None, max_length=64)
    imei: str | None = Field(default=None, max_length=64)
    imei2: str | None = Field(default=None, max_length=64)
    license_expiry: datetime | None = Field(default=None, alias="licenseExpiryDate")
    created_at: datetime | None = Field(default=None, alias="createDate")
    modified_at: datetime | None = Field(default=None, alias="modifiedDate")
    agent_version: str | None = Field(default=None, alias="agentVersion")
    firmware_version: str | None = Field(default=None, alias="firmwareVersion")
    sim_control_enabled: bool | None = Field(default=None, alias="simControlEnabled")
    sim_control_applied: bool | None = Field(default=None, alias="simControlApplied")
    sim_control_locked: bool | None = Field(default=None, alias="simControlLocked")
    latest_relock_applied: bool | None = Field(default=None, alias="latestRelockApplied")
    auto_lock_target: bool | None = Field(default=None, alias="autoLockTarget")
    device_support_hotp: bool | None = Field(default=None, alias="deviceSupportHotp")
    offline_locked: bool | None = Field(default=None, alias="offlineLocked")
    offline_lock_applied: bool | None = Field(default=None, alias="offlineLockApplied")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("license_expiry", "created_at", "modified_at", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> Any:
        return _millis(value)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[Device]) -> Device:
        device = handler(data)
        if isinstance(data, dict):
            device._raw = dict(data)
        return device

    def raw(self) -> dict[str, Any]:
        """The device object exactly as the vendor sent it (camelCase keys, epoch-ms times)."""
        return dict(self._raw)


class ApiReply(NeoModel):
    """A bare `{code, message, data}` answer (subscriptions)."""

    code: int | str | None = None
    message: str | None = None
    data: Any = None

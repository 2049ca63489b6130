"""Knox Guard's answers and requests as typed models. Vendor camelCase stops here.

Answers tolerate fields the docs do not list. `Blink` validates the documented ranges before a
request is sent (knox-guard-api.md "Set blinking reminders"), raising `KnoxRequestInvalid`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import SyncdError

_CONFIG = ConfigDict(extra="allow", populate_by_name=True)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TEL = re.compile(r"^\+?[0-9][0-9 ()-]{2,30}$")
MAX_MESSAGE = 200
MAX_UPLOAD = 10_000


class KnoxRequestInvalid(SyncdError):
    """A request syncd refuses to send because the Knox Guard docs say it would be refused."""


def _millis(value: Any) -> Any:
    """Knox timestamps are epoch milliseconds; 0 or empty means unset."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    return value


class KnoxModel(BaseModel):
    """Base of Knox Guard models: extra fields allowed, fields settable by name or alias."""

    model_config = _CONFIG


class AccessToken(KnoxModel):
    """The answer of POST /ams/v1/users/accesstoken."""

    access_token: SecretStr = Field(alias="accessToken", min_length=1, max_length=16384)


class Account(KnoxModel):
    """The user behind the token (GET /authorization)."""

    company_name: str | None = Field(default=None, alias="companyName")
    country: str | None = None
    email: str | None = None
    name: str | None = None
    phone_number: str | None = Field(default=None, alias="phoneNumber")


class Authorization(KnoxModel):
    """The answer of GET /authorization."""

    result: str | None = None
    user: Account | None = None


class ActionResult(KnoxModel):
    """The answer of a device action: objectId and requestedId, or an async transactionId."""

    result: str | None = None
    object_id: str | None = Field(default=None, alias="objectId", max_length=256)
    requested_id: str | None = Field(default=None, alias="requestedId", max_length=256)
    transaction_id: str | None = Field(default=None, alias="transactionId", max_length=256)


class TransactionResult(KnoxModel):
    """The answer of POST /transaction: per-device results of an async request."""

    transaction_id: str | None = Field(default=None, alias="transactionId")
    count: int = Field(default=0, ge=0)
    success: int = Field(default=0, ge=0)
    fail: int = Field(default=0, ge=0)
    results: list[dict[str, Any]] = Field(default_factory=list, alias="resultList")

    @property
    def done(self) -> bool:
        """True once every device of the request has a result."""
        return len(self.results) >= self.count or self.success + self.fail >= self.count


class InvalidReason(KnoxModel):
    """Why one device of an upload was refused."""

    device_uid: str | None = Field(default=None, alias="deviceUid")
    reason: str | None = None


class UploadResult(KnoxModel):
    """The answer of POST /devices/uploads."""

    result: str | None = None
    upload_id: str | None = Field(default=None, alias="uploadID")
    upload_status: str | None = Field(default=None, alias="uploadStatus")
    total_device_count: int | None = Field(default=None, alias="totalDeviceCount", ge=0)
    valid_device_count: int | None = Field(default=None, alias="validDeviceCount", ge=0)
    invalid_device_count: int | None = Field(default=None, alias="invalidDeviceCount", ge=0)
    invalid_reasons: list[InvalidReason] = Field(default_factory=list, alias="invalidReasons")


class UploadSummary(KnoxModel):
    """One upload batch of GET /devices/uploads."""

    upload_id: str = Field(alias="uploadId", min_length=1, max_length=256)
    upload_status: str | None = Field(default=None, alias="uploadStatus", max_length=64)
    created: datetime | None = Field(default=None, alias="createdTime")
    total_device_count: int | None = Field(default=None, alias="totalDeviceCount", ge=0)
    valid_device_count: int | None = Field(default=None, alias="validDeviceCount", ge=0)

    @field_validator("created", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> Any:
        return _millis(value)


class UploadPage(KnoxModel):
    """One page of upload batches with the tenant's totalCount."""

    page_num: int
    page_size: int
    total_count: int | None = Field(default=None, alias="totalCount", ge=0)
    items: list[UploadSummary] = Field(alias="uploads")

    @property
    def is_last(self) -> bool:
        """True when the page was not full: no page follows it."""
        return len(self.items) < self.page_size


class UploadDevice(KnoxModel):
    """One device of GET /devices/uploads/{uploadId}."""

    device_uid: str = Field(alias="deviceUid", max_length=128)
    result: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=1000)


class UploadDetail(KnoxModel):
    """One page of GET /devices/uploads/{uploadId}."""

    upload_id: str
    page_num: int
    page_size: int
    status: str | None = None
    devices: list[UploadDevice] = Field(default_factory=list)

    @property
    def is_last(self) -> bool:
        """True when the page was not full."""
        return len(self.devices) < self.page_size


class Device(KnoxModel):
    """A device as POST /devices/list describes it (`status`: a Knox Guard API state)."""

    device_uid: str = Field(alias="deviceUid", min_length=1, max_length=128)
    object_id: str | None = Field(default=None, alias="id", max_length=256)
    imei: str | None = Field(default=None, max_length=64)
    imei2: str | None = Field(default=None, max_length=64)
    serial: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=256)
    status: str | None = Field(default=None, max_length=64)
    approve_id: str | None = Field(default=None, alias="approveId", max_length=256)
    license_state: str | None = Field(default=None, alias="licenseState", max_length=64)
    license_expiry: datetime | None = Field(default=None, alias="licenseExpiryDate")
    created_at: datetime | None = Field(default=None, alias="createDate")
    modified_at: datetime | None = Field(default=None, alias="modifiedDate")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("license_expiry", "created_at", "modified_at", mode="before")
    @classmethod
    def _epoch_ms(cls, value: Any) -> Any:
        return _millis(value)

    @field_validator("imei", "imei2", "serial", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[Device]) -> Device:
        device = handler(data)
        if isinstance(data, dict):
            device._raw = dict(data)
        return device

    def raw(self) -> dict[str, Any]:
        """The device object exactly as the vendor sent it."""
        return dict(self._raw)


class DevicePage(KnoxModel):
    """One page of POST /devices/list."""

    page_num: int
    page_size: int
    total_count: int | None = None
    items: list[Device]

    @property
    def is_last(self) -> bool:
        """True when the page was not full: the documented end of a listing."""
        return len(self.items) < self.page_size


def _pair(name: str, value: list[int] | None, high: int) -> None:
    if value is None:
        return
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                  and 0 <= v <= high for v in value):
        raise ValueError(f"blink: {name} must be two whole numbers between 0 and {high}, "
                                 f"e.g. [23, 7] (got {value!r})")


class Blink(KnoxModel):
    """The body of POST /devices/blink, checked against the documented ranges when built."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    device_uid: str = Field(alias="deviceUid", min_length=1)
    interval: int
    message: str
    email: str | None = None
    tel: str | None = None
    time_limit_enable: bool = Field(default=False, alias="timeLimitEnable")
    days_limit_enable: bool = Field(default=False, alias="daysLimitEnable")
    time_limit: list[int] | None = Field(default=None, alias="timeLimit")
    days_limit: list[int] | None = Field(default=None, alias="daysLimit")

    @model_validator(mode="after")
    def _documented(self) -> Blink:
        if not 3 <= self.interval <= 86400:
            raise ValueError(f"blink: interval must be between 3 and 86400 seconds "
                                     f"(24 hours) (got {self.interval})")
        if not self.message.strip():
            raise ValueError("blink: message is required")
        if len(self.message) > MAX_MESSAGE:
            raise ValueError(f"blink: message must be at most {MAX_MESSAGE} characters "
                                     f"(got {len(self.message)})")
        if not (self.email or self.tel):
            raise ValueError("blink: give a phone number (tel) or an email address to "
                                     "contact about the payment")
        if self.email and not _EMAIL.match(self.email):
            raise ValueError(f"blink: email {self.email!r} is not an email address")
        if self.tel and not _TEL.match(self.tel):
            raise ValueError(f"blink: tel {self.tel!r} is not a phone number")
        if (self.time_limit_enable or self.days_limit_enable) and self.time_limit is None:
            raise ValueError("blink: timeLimit ([from hour, to hour]) is required when "
                                     "timeLimitEnable or daysLimitEnable is true")
        if self.days_limit_enable and self.days_limit is None:
            raise ValueError("blink: daysLimit ([from weekday, to weekday], 0 = Sunday) "
                                     "is required when daysLimitEnable is true")
        _pair("timeLimit", self.time_limit, 23)
        _pair("daysLimit", self.days_limit, 6)
        return self

    @classmethod
    def checked(cls, **fields: Any) -> Blink:
        """A Blink from snake_case fields; `KnoxRequestInvalid` with a clear line if it breaks a rule."""
        try:
            return cls(**fields)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            msg = str(first["msg"]).removeprefix("Value error, ")
            if not msg.startswith("blink:"):
                where = ".".join(str(p) for p in first["loc"]) or "request"
                msg = f"blink: {where}: {msg}"
            raise KnoxRequestInvalid(msg) from None

    def body(self) -> dict[str, Any]:
        """The JSON body, camelCase, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True)

"""Vendor sections: `[neolock]`, `[knoxguard]`, `[codelocks]`, `[biotime]`."""

from __future__ import annotations

import json
import zoneinfo
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from syncd.settings.base import PositiveFloat, Section

CODELOCKS_PLANS = (
    "Business 1", "Business 2", "Pro 1", "Pro 2", "Pro 3", "Enterprise 1", "Enterprise 2",
)

class NeoLockSettings(Section):
    """`[neolock]`: the NeoLock reseller API."""

    base_url: AnyHttpUrl
    login: str = Field(min_length=1)
    password: SecretStr
    webhook_secret: SecretStr | None = None
    rate_limit: PositiveFloat = 90.0
    subscription_check_seconds: PositiveFloat = 3600.0
    detail_max_age_hours: float = Field(default=24.0, ge=0.0, le=24.0 * 365)

    @field_validator("webhook_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 22:
            raise ValueError("must be at least 22 characters (128 bits); leave it out to generate one")
        return value


KNOX_HOSTS = {"eu": "https://eu-kcs-api.samsungknox.com", "us": "https://us-kcs-api.samsungknox.com"}
KNOX_PATHS = {"production": "/kcs/v1.1/kg", "development": "/integration"}
KNOX_TOKEN_PATH = "/ams/v1/users/accesstoken"  # noqa: S105 - a path, not a secret


class KnoxGuardSettings(Section):
    """`[knoxguard]`: the Samsung Knox Guard tenant API (static api_token, or keys + client id).

    The API base is `base_url`, else derived from `region` and `environment` (knox-guard-api.md);
    the token exchange is at `auth_url`, else at the API base's origin + /ams/v1/users/accesstoken.
    """

    region: Literal["eu", "us"] = "eu"
    environment: Literal["production", "development"] = "production"
    base_url: AnyHttpUrl | None = None
    auth_url: AnyHttpUrl | None = None
    api_token: SecretStr | None = None
    keys: SecretStr | None = None  # the tenant's keys.json (give keys_file)
    client_identifier: SecretStr | None = None
    token_validity_minutes: int = Field(default=30, ge=1, le=30)
    rate_limit: PositiveFloat = 90.0
    page_size: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _credentials(self) -> KnoxGuardSettings:
        flow = self.keys is not None or self.client_identifier is not None
        if (self.api_token is not None) == flow:
            raise ValueError("give exactly one of api_token (static token) or keys_file and "
                             "client_identifier (signed-token flow)")
        if flow and (self.keys is None or self.client_identifier is None):
            raise ValueError("the signed-token flow needs both keys_file and client_identifier")
        if self.keys is not None:
            try:
                pair = json.loads(self.keys.get_secret_value())
            except ValueError:
                pair = None
            if not (isinstance(pair, dict) and isinstance(pair.get("Public"), str)
                    and isinstance(pair.get("Private"), str)):
                raise ValueError("keys: not a Knox keys.json (a JSON object with base64 "
                                 "\"Public\" and \"Private\" keys)")
        return self

    @property
    def api_url(self) -> str:
        """The API base: base_url, else the documented URL of region and environment."""
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return KNOX_HOSTS[self.region] + KNOX_PATHS[self.environment]

    @property
    def token_url(self) -> str:
        """Where the access-token exchange is sent."""
        if self.auth_url is not None:
            return str(self.auth_url).rstrip("/") + KNOX_TOKEN_PATH
        origin = url_origin(self.api_url)
        return origin + KNOX_TOKEN_PATH


def url_origin(url: str) -> str:
    """scheme://host[:port] of `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class CodelocksQuota(Section):
    """A monthly call quota per category (a custom plan, or a bolt-on for one period)."""

    netcode: int = Field(default=0, ge=0)
    utility: int = Field(default=0, ge=0)


class CodelocksBoltOn(CodelocksQuota):
    """Extra calls bought for one quota period ("YYYY-MM")."""

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class CodelocksSettings(Section):
    """`[codelocks]`: Codelocks Connect (K3Connect locks, NetCodes) and its monthly quota."""

    base_url: AnyHttpUrl
    api_key: SecretStr
    access_keys: list[SecretStr] = Field(min_length=1)
    plan: Literal[
        "Business 1", "Business 2", "Pro 1", "Pro 2", "Pro 3", "Enterprise 1", "Enterprise 2"
    ] = "Business 1"
    quota: CodelocksQuota | None = None  # a custom plan's quota; overrides `plan`
    bolt_ons: list[CodelocksBoltOn] = Field(default_factory=list)
    reserve_percent: float = Field(default=20.0, ge=0, le=100)  # kept for operator actions
    period_timezone: str = "UTC"  # where the monthly quota period starts and ends
    rate_limit: PositiveFloat = 5.0
    max_retries: int = Field(default=2, ge=0, le=10)
    job_weights: dict[str, PositiveFloat] = Field(
        default_factory=lambda: {"k3-locks": 1.0, "k3-audit": 6.0, "k3-clients": 1.0})
    min_interval_seconds: PositiveFloat = 900.0
    max_interval_seconds: PositiveFloat = 7 * 86400.0
    audit_page_size: int = Field(default=100, ge=1, le=1000)
    audit_lookback_hours: float = Field(default=72.0, ge=0)
    audit_lookback_pages: int = Field(default=1, ge=0, le=100)
    audit_backfill_days: PositiveFloat = 30.0
    clients_page_size: int = Field(default=50, ge=1, le=1000)
    battery_low: list[str] = Field(default_factory=lambda: ["Low", "Critical"])
    silent_days: PositiveFloat = 7.0

    @field_validator("access_keys", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("period_timezone")
    @classmethod
    def _period_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; expected an IANA name like 'UTC'"
                             ) from None
        return value

    @model_validator(mode="after")
    def _intervals(self) -> CodelocksSettings:
        if self.max_interval_seconds < self.min_interval_seconds:
            raise ValueError("max_interval_seconds must be at least min_interval_seconds")
        return self

    @field_validator("job_weights")
    @classmethod
    def _known_jobs(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {"k3-locks", "k3-audit", "k3-clients"}
        if unknown:
            raise ValueError(f"unknown job(s) {sorted(unknown)}; expected k3-locks, k3-audit, "
                             "k3-clients")
        return value


class BioTimeSettings(Section):
    """`[biotime]`: a self-hosted ZKTeco BioTime server."""

    base_url: AnyHttpUrl
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    timezone: str = "UTC"
    online_window_seconds: PositiveFloat = 600.0
    concurrency: int = Field(default=4, ge=1, le=32)
    page_size: int = Field(default=100, ge=1, le=1000)
    paging: Literal["page_size", "limit"] = "page_size"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; expected an IANA name like "
                             "'Asia/Tashkent'") from None
        return value

    @model_validator(mode="after")
    def _credentials(self) -> BioTimeSettings:
        if self.token is None and not (self.username and self.password):
            raise ValueError("needs username and password (JWT login) or token (static Token auth)")
        return self

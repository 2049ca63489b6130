"""What syncd does about drift: `[reconcile]` and `[alerts]` (hooks, signing secrets)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from syncd.settings import checks
from syncd.settings.base import PositiveFloat, Section


def _whsec(value: SecretStr) -> SecretStr:
    problem = checks.webhook_secret_problem(value.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return value


WebhookSecret = Annotated[SecretStr, AfterValidator(_whsec)]


class AlertHook(Section):
    """One outbound alert hook: a Standard Webhooks receiver or a Prometheus Alertmanager."""

    url: AnyHttpUrl
    secret: WebhookSecret | None = None
    secrets: list[WebhookSecret] = Field(default_factory=list)  # more keys while rotating: all sign
    events: list[str] = Field(default_factory=lambda: ["*"])
    format: Literal["standard-webhooks", "alertmanager"] = "standard-webhooks"
    name: str | None = Field(default=None, min_length=1, max_length=64)
    timeout_seconds: PositiveFloat = 10.0

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("whsec_"):
            raise ValueError("must be a Standard Webhooks secret starting with 'whsec_'")
        return value

    @field_validator("secrets")
    @classmethod
    def _whsecs(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not v.get_secret_value().startswith("whsec_") for v in value):
            raise ValueError("every secret must be a Standard Webhooks secret starting with 'whsec_'")
        return value

    @property
    def hook_name(self) -> str:
        """The hook's stable name: `name`, else one made from a hash of its URL (never the URL)."""
        return self.name or "hook-" + hashlib.sha256(str(self.url).encode()).hexdigest()[:12]

    @model_validator(mode="after")
    def _signed(self) -> AlertHook:
        if self.format == "standard-webhooks" and self.secret is None and not self.secrets:
            raise ValueError("a standard-webhooks hook needs a secret (whsec_…)")
        return self


class AlertSettings(Section):
    """`[alerts]`: where alerts go, and how long the deliverer keeps trying."""

    hooks: list[AlertHook] = Field(default_factory=list)
    # At most 30 days: housekeeping forgets finished alerts after that, and a hook added later
    # is fanned out the alerts of this window.
    max_age_hours: float = Field(default=24.0, gt=0, le=720)
    lease_seconds: PositiveFloat = 60.0
    poll_seconds: PositiveFloat = 1.0
    retry_base_seconds: PositiveFloat = 5.0
    retry_max_seconds: PositiveFloat = 3600.0

    @model_validator(mode="after")
    def _lease_outlasts_posts(self) -> AlertSettings:
        slow = max((h.timeout_seconds for h in self.hooks), default=0.0)
        if self.lease_seconds <= slow:
            raise ValueError(f"lease_seconds must exceed every hook's timeout_seconds ({slow:g}): "
                             "a delivery still being sent would be sent again")
        return self


class ReconcileSettings(Section):
    """`[reconcile]`: drift thresholds and grace windows, and what remediation may do."""

    mode: Literal["off", "plan", "apply"] = "plan"
    grace_seconds: float = Field(default=600.0, ge=0)
    transitional_seconds: PositiveFloat = 3600.0
    licence_days: float = Field(default=14.0, ge=0)
    terminal_offline_seconds: PositiveFloat = 3600.0
    job_failures: int = Field(default=3, ge=1, le=1000)
    seen_resolution_seconds: float = Field(default=900.0, ge=0)
    max_actions_per_run: int = Field(default=20, ge=0, le=100_000)
    cooldown_seconds: float = Field(default=3600.0, ge=0)
    allow_unlock: bool = False
    allow_complete: bool = False
    lock_message: str = Field(default="", max_length=500)
    lock_tel: str = Field(default="", max_length=64)
    alert_min_severity: Literal["info", "warning", "critical"] = "warning"
    # 0: off. Reminders more often than hourly would be noise, each one a row per open case.
    renotify_hours: float = Field(default=0.0, ge=0, le=720)

    @field_validator("renotify_hours")
    @classmethod
    def _renotify_off_or_hourly(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (off) or at least 1 hour")
        return value

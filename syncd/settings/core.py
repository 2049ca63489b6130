"""Configuration: a TOML file, `SYNCD_<SECTION>__<KEY>` environment overrides, `<key>_file` secrets.

This is the only module that reads the environment. Everything else is handed a `Settings`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zoneinfo
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from syncd.errors import ConfigError
from syncd.settings import checks

DEFAULT_CONFIG_PATH = Path("/etc/syncd/syncd.toml")
CODELOCKS_PLANS = (
    "Business 1", "Business 2", "Pro 1", "Pro 2", "Pro 3", "Enterprise 1", "Enterprise 2",
)

PositiveFloat = Annotated[float, Field(gt=0)]
# The smallest database.pool_max_size that works (README "Database connections").
MIN_POOL_SIZE = 4


def _read_secret_file(key: str, raw: Any) -> str:
    """Read a secret from a file; a relative path is taken from $CREDENTIALS_DIRECTORY (systemd)."""
    path = Path(str(raw))
    hint = ""
    if not path.is_absolute():
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds:
            path = Path(creds) / path
        else:
            hint = ("; $CREDENTIALS_DIRECTORY is unset (it is set by systemd's LoadCredential=), "
                    f"so the path is relative to the working directory {Path.cwd()}")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise ValueError(f"{key}_file: cannot read {path} ({err.strerror}){hint}") from None


class _SecretFile(str):
    """A `<key>_file` path waiting to be read by the field's own validator.

    Reading it there, not in the model's before-validator, keeps one unreadable file from
    hiding the section's other problems: every problem is reported in one pass.
    """

    __slots__ = ()


class _BothGiven(str):
    """`x` and `x_file` both given: an error of field `x`, raised by its own validator so that the
    section's other problems are still found."""

    __slots__ = ()


_TRUE, _FALSE = ("true", "1"), ("false", "0")  # what a boolean may say in the environment


class Section(BaseModel):
    """A config section: unknown keys are errors, and any secret `x` may be given as `x_file`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in [k for k in data if isinstance(k, str) and k.endswith("_file")]:
            name = key[: -len("_file")]
            field = cls.model_fields.get(name)
            if field is None or "SecretStr" not in repr(field.annotation):
                continue
            raw = data.pop(key)
            data[name] = _BothGiven(name) if data.get(name) else _SecretFile(str(raw))
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _read_file(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, _BothGiven):
            raise ValueError(f"give either {value} or {value}_file, not both")
        if isinstance(value, _SecretFile):
            return _read_secret_file(info.field_name or "secret", value)
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take "yes", "on", 1: a boolean is true or false (in the environment,
        # where every value is text, also "1" or "0").
        field = cls.model_fields.get(info.field_name or "")
        if field is None or field.annotation is not bool or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("must be true or false")


class DatabaseSettings(Section):
    """`[database]`: where PostgreSQL is; empty url means embedded PostgreSQL under data_dir."""

    url: SecretStr | None = None
    pool_min_size: int = Field(default=1, ge=0, le=100)  # kept open in each pool (up to its size)
    pool_max_size: int = Field(default=10, le=500)  # both pools together (plus the lock connection)
    acquire_timeout_seconds: PositiveFloat = 5.0  # waiting for a pooled connection, then an error
    connect_timeout: PositiveFloat = 5.0
    command_timeout: PositiveFloat = 60.0
    embedded_listen: str | None = None  # "host:port": the embedded server also listens on TCP

    @field_validator("pool_max_size")
    @classmethod
    def _pool_floor(cls, value: int) -> int:
        if value < MIN_POOL_SIZE:
            raise ValueError(
                f"must be at least {MIN_POOL_SIZE}: half the pool (rounded down) serves job runs "
                "and the rest the request paths (intake, registry, inbox, alerts, health), and "
                "each half needs 2 connections so that neither can stall the other")
        return value

    @field_validator("embedded_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:5433 (empty: unix socket only)")
        return value

    @field_validator("url")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// DSN, or empty for embedded PostgreSQL")
        return value


class ServerSettings(Section):
    """`[server]`: the HTTP listener and the public URL vendors push to."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: AnyHttpUrl | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    shutdown_timeout: PositiveFloat = 10.0
    keepalive_timeout: PositiveFloat = 15.0  # idle connections (and unfinished heads) close
    body_timeout: PositiveFloat = 30.0  # a request body must arrive within this: else 408
    max_connections: int = Field(default=0, ge=0)  # 0: from the open-file limit


class AdminSettings(Section):
    """`[admin]`: the admin listener (console `/ui/`, `/api/v1/status`, `/metrics` as chosen).

    The console is never on the public listener unless `token` (give `token_file`) is set, and
    then only for requests carrying `Authorization: Bearer <token>`.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    token: SecretStr | None = None
    metrics: Literal["both", "admin"] = "both"  # where /metrics answers (admin: token on public)

    @field_validator("token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 22:
            raise ValueError("must be at least 22 characters (128 bits), e.g. from "
                             "`openssl rand -base64 32`")
        return value


class LoggingSettings(Section):
    """`[logging]`: level and format (auto: console on a terminal, JSON otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class JobSettings(Section):
    """`[jobs.<name>]`: schedule of one pull job."""

    enabled: bool = True
    interval_seconds: PositiveFloat | None = None  # None: the job's own default
    jitter_seconds: float = Field(default=5.0, ge=0)


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


class RegistrySettings(Section):
    """`[registry]`: the app device registry (POST /v2/device, GET /api/base/configs)."""

    enabled: bool = True
    device_management: int = 1
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    rate_limit_per_minute: PositiveFloat = 600.0
    rate_limit_burst: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=8192, ge=256, le=1024 * 1024)
    max_field_length: int = Field(default=128, ge=8, le=4096)
    last_seen_resolution_seconds: float = Field(default=3600.0, ge=0)
    database_timeout_seconds: PositiveFloat = 5.0


class _EnvSource(EnvSettingsSource):
    """SYNCD_* variables; a list or table that is not valid JSON is left as text, so validation
    reports it on its own line, naming the variable, with every other problem."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """JSON-decode a list or table value; the text itself when it is not JSON."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


class HeartbeatSettings(Section):
    """`[heartbeat]`: how often each process says it is alive, and when a silent one is given up."""

    interval_seconds: PositiveFloat = 5.0
    # Runs of a replica silent this long are failed as abandoned by any live replica: at most this
    # plus one interval after a kill -9 (the default keeps that within a minute).
    abandon_after_seconds: PositiveFloat = 30.0

    @model_validator(mode="after")
    def _misses_beats_first(self) -> HeartbeatSettings:
        if self.abandon_after_seconds < 3 * self.interval_seconds:
            raise ValueError("abandon_after_seconds must be at least 3 × interval_seconds: a "
                             "replica that missed one beat is not dead")
        return self


class StatusSettings(Section):
    """`[status]`: what `syncd status`, /api/v1/status and /metrics call down."""

    stale_after_seconds: PositiveFloat = 60.0  # a daemon not beaten for this long is not up
    expect_daemon: bool = True  # false: no `syncd run` on purpose (cron runs `sync --once`)


class TaskSettings(Section):
    """`[tasks]`: when a background task that keeps crashing is reported down."""

    restart_limit: int = Field(default=5, ge=1, le=1000)
    restart_window_seconds: PositiveFloat = 300.0


def _default_data_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY; otherwise a directory under the cwd.
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) if state else Path(".syncd")


class Settings(BaseSettings):
    """All of syncd's configuration. A vendor whose section is absent is disabled."""

    model_config = SettingsConfigDict(
        env_prefix="SYNCD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    admin: AdminSettings = AdminSettings()
    logging: LoggingSettings = LoggingSettings()
    jobs: dict[str, JobSettings] = Field(default_factory=dict)
    neolock: NeoLockSettings | None = None
    knoxguard: KnoxGuardSettings | None = None
    codelocks: CodelocksSettings | None = None
    biotime: BioTimeSettings | None = None
    alerts: AlertSettings = AlertSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    registry: RegistrySettings = RegistrySettings()
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    status: StatusSettings = StatusSettings()
    tasks: TaskSettings = TaskSettings()

    @field_validator("status")
    @classmethod
    def _stale_after_a_missed_beat(cls, value: StatusSettings,
                                   info: ValidationInfo) -> StatusSettings:
        beat = info.data.get("heartbeat")  # validated before: declared above
        if beat is not None and value.stale_after_seconds < 2 * beat.interval_seconds:
            raise ValueError("stale_after_seconds must be at least 2 × heartbeat.interval_seconds:"
                             " a daemon between two beats is up")
        return value

    _empty_file: Path | None = PrivateAttr(default=None)

    @property
    def empty_file(self) -> Path | None:
        """The config file these settings were loaded from, when it holds no setting at all."""
        return self._empty_file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs (see load()); environment wins over it.
        return (_EnvSource(settings_cls), init_settings)

    @field_validator("admin")
    @classmethod
    def _separate_listeners(cls, value: AdminSettings, info: ValidationInfo) -> AdminSettings:
        server = info.data.get("server")  # validated before admin (field order)
        if server is not None and value.port and value.port == server.port:
            raise ValueError(f"port {value.port} is server.port too: the admin listener needs "
                             "a port of its own")
        return value

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                if secret:
                    found.append(secret)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self)
        return found


def config_path(explicit: str | Path | None, environ: dict[str, str] | None = None) -> Path | None:
    """Which TOML file to read: --config, else $SYNCD_CONFIG, else /etc/syncd/syncd.toml if present."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("SYNCD_CONFIG"):
        return Path(env["SYNCD_CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def syncd_environ() -> dict[str, str]:
    """The SYNCD_* variables that configure settings (upper-cased names)."""
    return checks.settings_variables(os.environ)


def env_path(name: str) -> tuple[str, ...] | str:
    """`SYNCD_SERVER__PORT` → ("server", "port"), or what is wrong with the name."""
    return checks.env_path(name, Settings)


def _env_problems() -> tuple[list[str], dict[tuple[str, ...], str]]:
    """Unknown SYNCD_* names, and the known ones by the key path they set."""
    problems, paths = [], {}
    for name in sorted(syncd_environ()):
        found = env_path(name)
        if isinstance(found, str):
            problems.append(f"{name}: unknown setting in the environment: {found}")
        else:  # the whole name: env_path stops early at jobs and lists
            paths[tuple(name[len(checks.ENV_PREFIX):].lower().split("__"))] = name
    return problems, paths


def _env_jobs() -> dict[str, Any]:
    """Job names mentioned as SYNCD_JOBS__<NAME>__<KEY> (for the unknown-job check)."""
    names: dict[str, Any] = {}
    for name in syncd_environ():
        parts = name[len(checks.ENV_PREFIX):].lower().split("__")
        if parts[0] == "jobs" and len(parts) > 1:
            names[parts[1]] = {}
    return names


def nothing_configured() -> bool:
    """No config file, no SYNCD_* variable, no systemd state directory: nothing says where to work."""
    return config_path(None) is None and not syncd_environ() and \
        not os.environ.get("STATE_DIRECTORY")


def read_toml(path: str | Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Which file is used (--config, $SYNCD_CONFIG, the default) and what it holds."""
    source = config_path(path)
    return source, checks.read_toml(source)


def _anchor_data_dir(data: dict[str, Any], source: Path | None) -> dict[str, Any]:
    """A relative data_dir (the file's, or the default .syncd) is relative to the config file's
    directory, so every command reading one file finds one database whatever its working
    directory. Without a file, and in SYNCD_DATA_DIR (which wins over both), it is relative to
    the working directory."""
    raw = data.get("data_dir", _default_data_dir())
    if source is None or not isinstance(raw, str | Path) or Path(raw).is_absolute():
        return data
    return {**data, "data_dir": str(source.absolute().parent / raw)}


def load(path: str | Path | None = None, *, known_jobs: Collection[str] | None = None) -> Settings:
    """Load and validate settings; raise ConfigError with one line for every problem at once.

    `known_jobs` (from the job registry) makes `[jobs.<name>]` with any other name an error.
    """
    source = config_path(path)
    data, lines = checks.parse_toml(source)  # after a syntax error: what still parses
    env_lines, env = _env_problems()
    lines += env_lines
    jobs = data.get("jobs", {})
    lines += checks.job_problems({**(jobs if isinstance(jobs, dict) else {}), **_env_jobs()},
                                 known_jobs)
    try:
        settings = Settings(**_anchor_data_dir(data, source))
    except ValidationError as err:
        lines += [checks.problem_line(dict(e), Settings, env)
                  for e in err.errors(include_url=False)]
        raise ConfigError(sorted(set(lines), key=lines.index)) from None
    if lines:
        raise ConfigError(lines)
    if source is not None and not data:
        settings._empty_file = source
    return settings


class SystemdEnv(BaseModel):
    """What systemd tells a service through its environment."""

    notify_socket: str | None = None
    watchdog_usec: int | None = None
    watchdog_pid: int | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> SystemdEnv:
        """Read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID."""
        env = os.environ if environ is None else environ
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        return cls(notify_socket=env.get("NOTIFY_SOCKET") or None,
                   watchdog_usec=int(usec) if usec.isdigit() else None,
                   watchdog_pid=int(pid) if pid.isdigit() else None)

    def watchdog_interval(self, pid: int) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the timeout), or None when not asked for."""
        if not self.watchdog_usec or (self.watchdog_pid and self.watchdog_pid != pid):
            return None
        return self.watchdog_usec / 2_000_000

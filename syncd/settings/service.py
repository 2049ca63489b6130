"""Sections of syncd's own service: database, listeners, logging, jobs, registry, heartbeat,
status, tasks."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)

from syncd.settings.base import PositiveFloat, Section

# The smallest database.pool_max_size that works (README "Database connections").
MIN_POOL_SIZE = 4

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

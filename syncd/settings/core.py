"""Configuration: a TOML file, `SYNCD_<SECTION>__<KEY>` environment overrides, `<key>_file` secrets.

This is the only module that reads the environment. Everything else is handed a `Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
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
from syncd.settings.drift import AlertSettings, ReconcileSettings
from syncd.settings.service import (
    AdminSettings,
    DatabaseSettings,
    HeartbeatSettings,
    JobSettings,
    LoggingSettings,
    RegistrySettings,
    ServerSettings,
    StatusSettings,
    TaskSettings,
)
from syncd.settings.vendors import BioTimeSettings, CodelocksSettings, KnoxGuardSettings, NeoLockSettings

DEFAULT_CONFIG_PATH = Path("/etc/syncd/syncd.toml")
class _EnvSource(EnvSettingsSource):
    """SYNCD_* variables; a list or table that is not valid JSON is left as text, so validation
    reports it on its own line, naming the variable, with every other problem."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """JSON-decode a list or table value; the text itself when it is not JSON."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


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
    _overridden: list[str] = PrivateAttr(default_factory=list)

    @property
    def empty_file(self) -> Path | None:
        """The config file these settings were loaded from, when it holds no setting at all."""
        return self._empty_file

    @property
    def overridden(self) -> list[str]:
        """A line for each key of the config file that a SYNCD_* variable overrides."""
        return list(self._overridden)

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


def _env_problems() -> tuple[list[str], dict[tuple[str, ...], str]]:
    """Unknown SYNCD_* names, and the known ones by the key path they set."""
    problems, paths = [], {}
    for name in sorted(syncd_environ()):
        found = checks.env_path(name, Settings)
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
    if source is not None:
        settings._overridden = checks.overridden(data, env, source)
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

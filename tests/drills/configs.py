"""Replica configuration files, as an operator would write them: every vendor configured, a small
pool, short job intervals (so a short drill sees many runs), hooks on some replicas only."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

POOL_MAX_SIZE = 4  # the smallest pool DESIGN.md promises works
HOOK_TIMEOUT = 5.0  # seconds a hook may take to answer
ALERT_LEASE = 15.0  # a delivery claimed by a replica that died is sent again after this
JOB_INTERVALS = {
    "neolock-uploads": 8.0, "neolock-devices": 8.0, "knox-uploads": 8.0, "knox-devices": 8.0,
    "biotime-terminals": 8.0, "biotime-punches": 8.0, "reconcile": 4.0, "housekeeping": 20.0,
}


def whsec() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclasses.dataclass(frozen=True)
class Hook:
    """One alert hook: a receiver's URL and the secret it verifies with."""

    name: str
    url: str
    secret: str


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings: JSON is valid TOML here


def toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for nested dicts of scalars, lists of scalars and lists of tables (enough here)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            arrays.append((name, value))
        else:
            lines.append(f"{json.dumps(key)} = {_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        out += f"\n[{name}]\n" + toml(table, name)
    for name, items in arrays:
        for item in items:
            out += f"\n[[{name}]]\n" + toml(item, name)
    return out


def replica_config(*, data_dir: Path, dsn: str, port: int, vendors: dict[str, dict[str, Any]],
                   webhook_secret: str, hooks: list[Hook]) -> str:
    """One replica's syncd.toml: the shared database and vendors, its own port and data dir."""
    config: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database": {"url": dsn, "pool_min_size": 1, "pool_max_size": POOL_MAX_SIZE},
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "shutdown_timeout": 5.0},
        "admin": {"host": "127.0.0.1", "port": 0},  # the console's listener: any free port
        "logging": {"level": "info", "format": "json"},
        **{name: dict(section) for name, section in vendors.items()},
        "reconcile": {"mode": "plan", "grace_seconds": 0.0},
        "registry": {"rate_limit_per_minute": 60000.0, "rate_limit_burst": 1000},
        "alerts": {"lease_seconds": ALERT_LEASE, "poll_seconds": 1.0, "retry_base_seconds": 1.0,
                   "retry_max_seconds": 5.0,
                   "hooks": [{"name": h.name, "url": h.url, "secret": h.secret,
                              "timeout_seconds": HOOK_TIMEOUT} for h in hooks]},
        "jobs": {name: {"interval_seconds": seconds, "jitter_seconds": 2.0}
                 for name, seconds in JOB_INTERVALS.items()},
    }
    config["neolock"]["webhook_secret"] = webhook_secret
    if not hooks:
        del config["alerts"]["hooks"]
    return toml(config)

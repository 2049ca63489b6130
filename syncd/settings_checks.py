"""How configuration problems are found and worded: environment key paths, job names, pydantic
errors as one line each. Pure functions over what `syncd.settings` hands them (it alone reads the
environment), kept apart so that settings.py stays the list of sections.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from syncd.errors import ConfigError

ENV_PREFIX = "SYNCD_"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
WEBHOOK_KEY_BYTES = (24, 64)  # the key lengths the Standard Webhooks spec allows
# SYNCD_ variables that are not settings: the config file path, and the test suite's own.
_NOT_SETTINGS = ("SYNCD_CONFIG", "SYNCD_TEST_")


def settings_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The SYNCD_* variables of `environ` that configure settings (upper-cased names)."""
    return {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)
            and not k.upper().startswith(_NOT_SETTINGS)}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def env_path(name: str, root: type[BaseModel]) -> tuple[str, ...] | str:
    """`SYNCD_SERVER__PORT` → ("server", "port") in the `root` model; a string saying what is wrong
    when it names no key."""
    parts = name[len(ENV_PREFIX):].lower().split("__")
    model: type[BaseModel] | None = root
    path: list[str] = []
    for part in parts:
        if model is None:
            return f"{'.'.join(path)} takes no sub-keys"
        fields = model.model_fields
        key = part[: -len("_file")] if part.endswith("_file") and part not in fields else part
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            where = ".".join(path) or "the top level"
            return f"no key {part!r} in {where}" + (f" (did you mean {near[0]!r}?)" if near else "")
        if key != part and "SecretStr" not in repr(fields[key].annotation):
            return f"{'.'.join([*path, key])} is not a secret, so it has no _file form"
        path.append(part)
        annotation = fields[key].annotation
        if key == "jobs" and model is root:
            return tuple(path)  # job names and their keys are checked with the TOML's
        if get_origin(annotation) is list:
            return tuple(path)  # a JSON list, validated as a value
        model = _model_of(annotation)
    return tuple(path)


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the strict base64 after the prefix (ValueError if not)."""
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError(f"is not valid base64 after {WEBHOOK_SECRET_PREFIX!r} (A-Z, a-z, 0-9, "
                         "+, / and = padding, length a multiple of 4)") from None


def webhook_secret_problem(secret: str) -> str | None:
    """What is wrong with a Standard Webhooks secret as configured, or None when it will sign."""
    low, high = WEBHOOK_KEY_BYTES
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return f"must be a Standard Webhooks secret starting with {WEBHOOK_SECRET_PREFIX!r}"
    if secret == WEBHOOK_SECRET_PREFIX:
        return (f"has no key after {WEBHOOK_SECRET_PREFIX!r} (expected the base64 of {low} to "
                f"{high} random bytes)")
    try:
        key = webhook_key(secret)
    except ValueError as err:
        return str(err)
    if not low <= len(key) <= high:
        return (f"decodes to {len(key)} bytes; a Standard Webhooks key is {low} to {high} "
                f"bytes (e.g. {WEBHOOK_SECRET_PREFIX} + base64 of 32 random bytes)")
    return None


def job_problems(jobs: Any, known: Collection[str] | None) -> list[str]:
    """`[jobs.<name>]` sections naming no known job."""
    if known is None or not isinstance(jobs, dict):
        return []
    return [f"jobs.{name}: unknown job; known jobs: {', '.join(known)}"
            for name in jobs if name not in known]


def problem_line(err: dict[str, Any]) -> str:
    """One `key: what is wrong` line for a pydantic error, secret values never shown."""
    loc = ".".join(str(part) for part in err["loc"]
                   if not str(part).startswith("function-after[_credentials"))
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against syncd.toml.example)"
    elif err["type"] == "missing":
        msg = "missing: this key is required when its section is present"
    elif err["type"] == "url_parsing" or err["type"] == "url_scheme":
        msg = f"{msg}; expected an http(s) URL such as https://host/path"
    if "input" in err and err["type"] not in ("missing", "extra_forbidden"):
        shown = err["input"]
        if not any(word in loc for word in ("password", "secret", "token", "key", "url")) and \
                isinstance(shown, str | int | float | bool) and repr(shown) not in msg:
            msg = f"{msg} (got {shown!r})"
    return f"{loc or 'config'}: {msg}"


def read_toml(source: Path | None) -> dict[str, Any]:
    """The TOML file's content ({} without a file); ConfigError when it cannot be read or parsed."""
    if source is None:
        return {}
    try:
        with source.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"config: file {source} does not exist"]) from None
    except OSError as err:
        raise ConfigError([f"config: cannot read {source} ({err.strerror})"]) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"config: {source} is not valid TOML ({err})"]) from None


def config_warnings(settings: Any) -> list[str]:
    """What is valid but probably not what was meant (`settings`: a syncd Settings)."""
    found = []
    if settings.neolock is not None and settings.server.public_url is None:
        found.append("server.public_url is not set: NeoLock cannot push events to syncd (no "
                     "webhook subscription); pulls still run")
    return found

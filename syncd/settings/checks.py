"""How configuration problems are found and worded: environment key paths, job names, pydantic
errors as one line each. Pure functions over what `syncd.settings.core` hands them (it alone reads the
environment), kept apart so that settings.py stays the list of sections.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
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


def _item_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds, and whether it sits in a list or dict (one more loc part)."""
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) in (list, dict):
            return _model_of(get_args(candidate)[-1]), True
    return _model_of(annotation), False


def did_you_mean(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """" (did you mean 'x'?)" for an unknown key at `loc` of `root`, or ""."""
    model: type[BaseModel] | None = root
    parts = list(loc[:-1])
    while parts and model is not None:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return ""
        model, contained = _item_model(field.annotation)
        if contained and parts:
            parts.pop(0)  # the list index or the dict key ([jobs.<name>])
    if model is None:
        return ""
    name = str(loc[-1])
    base = name[: -len("_file")] if name.endswith("_file") else name
    near = difflib.get_close_matches(base, list(model.model_fields), n=1)
    if not near:
        return ""
    return f" (did you mean {near[0] + name[len(base):]!r}?)"


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
    lines = []
    for name in jobs:
        if name not in known:
            near = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            lines.append(f"jobs.{name}: unknown job{hint}; known jobs: {', '.join(known)}")
    return lines


def problem_line(err: dict[str, Any], root: type[BaseModel] | None = None,
                 env: Mapping[tuple[str, ...], str] | None = None) -> str:
    """One `key: what is wrong` line for a pydantic error, secret values never shown.

    `root` (the settings model) lets an unknown key suggest the nearest known one; `env`
    (dotted path → variable) names the SYNCD_* variable a bad value came from.
    """
    loc = ".".join(str(part) for part in err["loc"]
                   if not str(part).startswith("function-after[_credentials"))
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        near = did_you_mean(tuple(err["loc"]), root) if root is not None else ""
        kind = "section" if isinstance(err.get("input"), dict) else "key"
        msg = f"unknown {kind}{near} (check the spelling against syncd.toml.example)"
    elif err["type"] == "missing":
        msg = "missing: this key is required when its section is present"
    elif err["type"] == "url_parsing" or err["type"] == "url_scheme":
        msg = f"{msg}; expected an http(s) URL such as https://host/path"
    # Text where a list or table belongs: an environment value that is not JSON, whose secrets
    # (a hook's, say) the loc does not reveal. Never shown.
    unparsed = isinstance(err.get("input"), str) and err["type"] in ("list_type", "dict_type",
                                                                     "model_type")
    if "input" in err and err["type"] not in ("missing", "extra_forbidden") and not unparsed:
        shown = err["input"]
        if not any(word in loc for word in ("password", "secret", "token", "key", "url")) and \
                isinstance(shown, str | int | float | bool) and repr(shown) not in msg:
            msg = f"{msg} (got {shown!r})"
    variable = _variable_of(tuple(str(part) for part in err["loc"]), env or {})
    if variable is not None:
        if unparsed:
            msg += "; the environment gives lists and tables as JSON"
        return f"{variable}: {loc or 'config'}: {msg}"
    return f"{loc or 'config'}: {msg}"


def _variable_of(loc: tuple[str, ...], env: Mapping[tuple[str, ...], str]) -> str | None:
    """The variable whose value is at `loc` or encloses it (SYNCD_ALERTS__HOOKS for
    alerts.hooks.0.url), a `<key>_file` variable standing for `<key>`."""
    for path, variable in env.items():
        last = path[-1]
        forms = [path]
        if last.endswith("_file"):
            forms.append((*path[:-1], last[: -len("_file")]))
        if any(loc[: len(form)] == form for form in forms):
            return variable
    return None


def read_toml(source: Path | None) -> dict[str, Any]:
    """The TOML file's content ({} without a file); ConfigError when it cannot be read or parsed."""
    data, problems = parse_toml(source)
    if problems:
        raise ConfigError(problems)
    return data


def parse_toml(source: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The TOML file's content ({} without a file) and its syntax errors, one line each naming
    file, line and column. After an error, the tables that parse on their own are still
    returned, so that their problems are found in the same pass. ConfigError when the file
    cannot be read at all."""
    if source is None:
        return {}, []
    try:
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config: file {source} does not exist"]) from None
    except OSError as err:
        raise ConfigError([f"config: cannot read {source} ({err.strerror})"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"config: {source} is not UTF-8 text (byte {err.start})"]) from None
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as err:
        first = err
    return _salvage(text, source, first)


# A line that opens a table or an array of tables: `[server]`, `[jobs.k3-audit]`, `[[alerts.hooks]]`,
# or tries to (`[server`, a missing bracket, still starts a new table).
_TABLE_LINE = re.compile(r"""^\s*\[\[?\s*[\w."' -]+\]?\]?\s*(#.*)?$""")
_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def _syntax_line(source: Path, err: tomllib.TOMLDecodeError, first_line: int,
                 chunk: str) -> tuple[int, str]:
    """(absolute line, `file:line:col: not valid TOML: what`) for an error in `chunk`."""
    message = str(err)
    found = _POSITION.search(message)
    what = message[: found.start()] if found else message
    if found and found.group(1):
        line = first_line + int(found.group(1)) - 1
        return line, f"{source}:{line}:{found.group(2)}: not valid TOML: {what}"
    line = first_line + max(len(chunk.rstrip().splitlines()), 1) - 1  # "at end of document"
    return line, f"{source}:{line}: not valid TOML: {what} (by the end of this table)"


def _salvage(text: str, source: Path,
             first: tomllib.TOMLDecodeError) -> tuple[dict[str, Any], list[str]]:
    """Parse table by table after a syntax error: the tables that parse on their own, and one
    line per error. The whole-file parser's first error is exact: the tables before it parsed,
    the one holding it is left out, and each table after it is parsed and reported on its own."""
    lines = text.splitlines(keepends=True)
    starts = [0] + [i for i, line in enumerate(lines) if i and _TABLE_LINE.match(line)]
    chunks = [(start + 1, "".join(lines[start:end]))
              for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)]
    at, exact = _syntax_line(source, first, 1, text)
    found = _POSITION.search(str(first))
    failed = None  # the table holding the first error, when its line is known
    if found is not None and found.group(1):
        failed = max(i for i, (line, _) in enumerate(chunks) if line <= at)
    problems = [exact] if failed is not None else []
    data: dict[str, Any] = {}
    declared: set[tuple[str, ...]] = set()
    for index, (line, chunk) in enumerate(chunks):
        if index == failed:
            continue
        try:
            part = tomllib.loads(chunk)
        except tomllib.TOMLDecodeError as err:
            if failed is None or index > failed:  # before the first error it parsed in the file
                problems.append(_syntax_line(source, err, line, chunk)[1])
            continue
        clash = _merge(data, part, _declares(chunk), declared)
        if clash:
            problems.append(f"{source}:{line}: not valid TOML: {clash}")
    return data, problems or [exact]


def _declares(chunk: str) -> tuple[str, ...] | None:
    """The path of the standard table `chunk` opens (`[a.b]` → ("a", "b")), else None."""
    head = chunk.split("\n", 1)[0]
    if not _TABLE_LINE.match(head) or head.lstrip().startswith("[["):
        return None
    try:
        node: Any = tomllib.loads(head)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        path.append(key)
    return tuple(path)


def _merge(into: dict[str, Any], part: dict[str, Any], table: tuple[str, ...] | None,
           declared: set[tuple[str, ...]]) -> str | None:
    """Merge one table's parse into the file's; what clashes (as tomllib would say), or None."""
    if table is not None:
        if table in declared:
            return f"Cannot declare {table!r} twice"
        declared.add(table)

    def merge(a: dict[str, Any], b: dict[str, Any]) -> str | None:
        for key, value in b.items():
            if key not in a:
                a[key] = value
            elif isinstance(a[key], dict) and isinstance(value, dict):
                clash = merge(a[key], value)
                if clash:
                    return clash
            elif isinstance(a[key], list) and isinstance(value, list):
                a[key].extend(value)  # [[array.of.tables]] in several places
            else:
                return f"Cannot overwrite a value ({key!r})"
        return None

    return merge(into, part)


def overridden(data: Mapping[str, Any], env: Mapping[tuple[str, ...], str],
               source: Path) -> list[str]:
    """A line for each key the file sets that an environment variable sets too (and wins).

    `env` maps key paths to the variables setting them. (`x` on one side and `x_file` on the
    other is an error of its own, reported by load.)
    """
    found = []
    for path, variable in env.items():
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            found.append(f"{'.'.join(path)}: the value in {source} is overridden by {variable} "
                         "(the environment wins over the file)")
    return found


def config_warnings(settings: Any) -> list[str]:
    """What is valid but probably not what was meant (`settings`: a syncd Settings)."""
    found = list(settings.overridden)
    if settings.empty_file is not None:
        found.append(f"the config file {settings.empty_file} is empty: every setting is at its "
                     "default unless a SYNCD_* variable sets it")
    if settings.neolock is not None and settings.server.public_url is None:
        found.append("server.public_url is not set: NeoLock cannot push events to syncd (no "
                     "webhook subscription); pulls still run")
    return found

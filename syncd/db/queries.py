"""Named SQL queries, loaded from `sql/queries/*.sql` blocks of the form `-- name --`."""

from __future__ import annotations

import functools
import importlib.resources
import re
from importlib.resources.abc import Traversable

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --\s*$", re.MULTILINE)


def sql_root() -> Traversable:
    """The `sql/` directory shipped inside the package."""
    return importlib.resources.files("syncd") / "sql"


def parse(text: str, origin: str = "<string>") -> dict[str, str]:
    """Split a file into {name: sql}; the line after each header is a description (a comment)."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{origin}: query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


@functools.cache
def load_all() -> dict[str, str]:
    """Every named query of every file under sql/queries, by name (names are global)."""
    queries: dict[str, str] = {}
    for entry in sorted((sql_root() / "queries").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"{entry.name}: query {name!r} is already defined elsewhere")
            queries[name] = sql
    return queries


# What a statement can leave behind on its session: a session-level advisory lock, a LISTEN, an open
# cursor, a setting changed for the session.
_SESSION_STATE = re.compile(
    r"pg_(?:try_)?advisory_lock|\bLISTEN\b|\bDECLARE\b|set_config\s*\("
    r"|(?:\A|;)(?:\s*--[^\n]*\n)*\s*SET\s+(?!LOCAL\b)",  # SET as a statement, not UPDATE's
    re.IGNORECASE)


@functools.cache
def leaves_session_state(name: str) -> bool:
    """Whether the named query can leave state on its session that a pooled connection must shed
    (asyncpg's reset) before anyone else uses it."""
    return _SESSION_STATE.search(get(name)) is not None


def get(name: str) -> str:
    """The SQL of the named query."""
    try:
        return load_all()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} under sql/queries") from None

"""Forward-only migrations from `sql/migrations/NNNN_name.sql`, one transaction each.

Two starters are safe: the runner holds a PostgreSQL advisory lock while it works. Each applied
migration's SHA-256 is recorded; if a file changes after it was applied, syncd refuses to start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import re

import structlog

from syncd.db import locks
from syncd.db.pool import Connection, Database, translate
from syncd.db.queries import sql_root
from syncd.errors import MigrationError

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclasses.dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """The migrations shipped with syncd, in order; refuses duplicate numbers and bad names."""
    found: list[Migration] = []
    for entry in (sql_root() / "migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    # Numbers are handed out to parallel branches, so a branch may have gaps (0004, then 0009):
    # harmless, since every migration not applied yet is applied, in order. Two files with one
    # number are refused.
    for before, migration in itertools.pairwise(found):
        if migration.version == before.version:
            raise MigrationError(f"migrations {before.name} and {migration.name} share version "
                                 f"{migration.version:04d}")
    return found


async def _applied(conn: Connection) -> dict[int, tuple[str, str]]:
    exists = await conn.fetchval("SELECT to_regclass('ops.schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum FROM ops.schema_migrations")
    return {r["version"]: (r["name"], r["checksum"]) for r in rows}


def _check(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> list[Migration]:
    """Raise on edited or unknown applied migrations; return the pending ones."""
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(f"the database has migration {name} which this syncd does not "
                                 "know: it was migrated by a newer syncd")
        if migration.checksum != checksum:
            raise MigrationError(f"migration {migration.name} was edited after it was applied "
                                 f"(recorded sha256 {checksum[:12]}…, file {migration.checksum[:12]}…)"
                                 "; add a new migration instead")
    return [m for m in migrations if m.version not in applied]


async def pending(db: Database) -> list[Migration]:
    """Migrations not yet applied (raises MigrationError when an applied one was edited)."""
    async with db.connection() as conn:
        with translate():
            return _check(discover(), await _applied(conn))


@dataclasses.dataclass(frozen=True)
class MigrationState:
    """One shipped migration and when it was applied (None: pending)."""

    migration: Migration
    applied_at: dt.datetime | None


async def status(db: Database) -> list[MigrationState]:
    """Every shipped migration with when it was applied (raises if an applied one was edited)."""
    async with db.connection() as conn:
        with translate():
            migrations = discover()
            _check(migrations, await _applied(conn))
            rows = [] if not await conn.fetchval(
                "SELECT to_regclass('ops.schema_migrations') IS NOT NULL") else await conn.fetch(
                "SELECT version, applied_at FROM ops.schema_migrations")
    when = {r["version"]: r["applied_at"] for r in rows}
    return [MigrationState(m, when.get(m.version)) for m in migrations]


async def migrate(db: Database) -> list[str]:
    """Apply pending migrations under an advisory lock; return the names applied."""
    migrations = discover()
    done: list[str] = []
    async with db.connection() as conn, locks.advisory_lock(conn, locks.MIGRATIONS):
        with translate():
            await conn.execute(_BOOTSTRAP)
            for migration in _check(migrations, await _applied(conn)):
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO ops.schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version, migration.name, migration.checksum)
                log.info("db.migration_applied", migration=migration.name)
                done.append(migration.name)
    return done

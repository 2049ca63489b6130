"""Migrations: apply to an empty database, re-run as a no-op, refuse edits, serialize starters."""

from __future__ import annotations

import asyncio

import pytest

from syncd.db import queries
from syncd.db.migrate import discover, migrate, pending
from syncd.db.pool import Database
from syncd.errors import MigrationError


async def test_migrations_apply_to_an_empty_database_then_rerun_is_a_no_op(empty_db_dsn: str) -> None:
    """Every migration applies once to an empty database; the second run applies nothing."""
    db = await Database.connect(empty_db_dsn)
    try:
        applied = await migrate(db)
        assert applied == [m.name for m in discover()]
        assert await migrate(db) == []
        assert await pending(db) == []
        async with db.connection() as conn:
            schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
            assert {"vendor", "local", "ops", "report"} <= schemas
            for table in ("local.phone_contracts", "local.terminals", "local.k3_clients",
                          "ops.sync_runs", "ops.cursors", "report.sync_runs"):
                assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
    finally:
        await db.close()


async def test_an_edited_migration_is_refused(db: Database) -> None:
    """If an applied migration's text differs from what was applied, migrate refuses to proceed."""
    async with db.connection() as conn:
        # What an edit of the file looks like from the database's side: the checksums differ.
        await conn.execute("UPDATE ops.schema_migrations SET checksum = 'deadbeef' WHERE version = 1")
    with pytest.raises(MigrationError, match=r"0001_baseline\.sql was edited after it was applied"):
        await migrate(db)
    with pytest.raises(MigrationError):
        await pending(db)


async def test_a_migration_unknown_to_this_version_is_refused(db: Database) -> None:
    """A database migrated by a newer syncd is refused rather than silently used."""
    async with db.connection() as conn:
        await conn.execute("INSERT INTO ops.schema_migrations (version, name, checksum) "
                           "VALUES (9999, '9999_future.sql', 'x')")
    with pytest.raises(MigrationError, match="newer syncd"):
        await migrate(db)


async def test_two_concurrent_migrators_serialize(empty_db_dsn: str) -> None:
    """Two starters racing on an empty database apply each migration exactly once, without error."""
    first = await Database.connect(empty_db_dsn)
    second = await Database.connect(empty_db_dsn)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        names = [m.name for m in discover()]
        assert sorted(results[0] + results[1]) == sorted(names)
        count = await first.fetchval("migrations_applied_count")
        assert count == len(names)
    finally:
        await first.close()
        await second.close()


async def test_every_named_query_prepares_against_the_schema(db: Database) -> None:
    """Each block in sql/queries parses and plans against the migrated schema (no typos, no drift)."""
    names = queries.load_all()
    assert "sync_run_start" in names
    async with db.connection() as conn:
        for name, sql in names.items():
            try:
                if "CREATE TEMP TABLE" in sql:  # a session's staging table: make it
                    await conn.execute(sql)
                    continue
                await conn.prepare(sql)
            except Exception as err:  # report which query broke
                pytest.fail(f"query {name!r} does not prepare: {err}")


def test_query_files_refuse_duplicate_names() -> None:
    """A block name defined twice in one file is an error, not a silent override."""
    text = "-- a --\n-- first\nSELECT 1\n\n-- a --\n-- again\nSELECT 2\n"
    with pytest.raises(ValueError, match="defined twice"):
        queries.parse(text, "dup.sql")


def test_query_parse_keeps_each_block() -> None:
    """Blocks are split on their `-- name --` headers with the SQL kept whole."""
    parsed = queries.parse("-- one --\n-- d\nSELECT 1\n-- two --\n-- d\nSELECT 2 FROM x\n")
    assert parsed == {"one": "-- d\nSELECT 1", "two": "-- d\nSELECT 2 FROM x"}

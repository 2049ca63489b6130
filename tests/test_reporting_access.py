"""Reaching the data: the read-only reporting role (migration 0007), readers, backup and restore."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from syncd.cli.main import main
from syncd.db.pool import Database
from syncd.db.readers import ensure_reader

PASSWORD = "reader-password-0123"


def as_user(dsn: str, user: str) -> str:
    """The same database, logging in as `user` (the test server trusts local logins)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@pytest.fixture
async def reader(db: Database, pg_admin_dsn: str) -> AsyncIterator[str]:
    """A login made by ensure_reader (as `syncd db reader` does), dropped after the test."""
    name = f"reader_{uuid.uuid4().hex[:10]}"
    assert await ensure_reader(db, name, PASSWORD) is True
    yield name
    conn = await asyncpg.connect(pg_admin_dsn)
    try:
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def test_reader_selects_every_report_view_and_nothing_else(db: Database, db_dsn: str,
                                                                 reader: str) -> None:
    """A syncd_report login reads each report.* view; vendor, local and ops are refused; no writes."""
    async with db.connection() as conn:
        views = [r["name"] for r in await conn.fetch(
            "SELECT format('%I.%I', schemaname, viewname) AS name FROM pg_views "
            "WHERE schemaname = 'report'")]
        tables = [r["name"] for r in await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables "
            "WHERE schemaname IN ('vendor', 'local', 'ops')")]
    assert len(views) >= 5 and tables
    conn = await asyncpg.connect(as_user(db_dsn, reader))
    try:
        for view in views:
            await conn.fetch(f"SELECT * FROM {view} LIMIT 1")
        for table in tables:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT 1 FROM {table} LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO local.terminals (sn) VALUES ('X')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE VIEW report.mine AS SELECT 1")
    finally:
        await conn.close()


async def test_views_added_by_later_migrations_are_readable_too(db: Database, db_dsn: str,
                                                                reader: str) -> None:
    """A view created in report.* after 0007 (as migrations 0008+ will) is readable at once."""
    async with db.connection() as conn:
        await conn.execute("CREATE VIEW report.later_view AS SELECT 42 AS answer")
    conn = await asyncpg.connect(as_user(db_dsn, reader))
    try:
        assert await conn.fetchval("SELECT answer FROM report.later_view") == 42
    finally:
        await conn.close()


async def test_reader_again_changes_the_password_not_the_role(db: Database, reader: str) -> None:
    """Running `db reader` for an existing login updates it (returns False) and keeps it a reader."""
    assert await ensure_reader(db, reader, PASSWORD + "-new") is False
    async with db.connection() as conn:
        member = await conn.fetchval("SELECT pg_has_role($1, 'syncd_report', 'MEMBER')", reader)
    assert member is True


async def test_reader_password_never_reaches_the_output(db_dsn: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        pg_admin_dsn: str) -> None:
    """`syncd db reader NAME --password-file F` creates the login; the password is printed nowhere."""
    name = f"reader_{uuid.uuid4().hex[:10]}"
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n')
    try:
        code = await asyncio.to_thread(main, ["db", "reader", name, "--password-file", str(secret),
                                              "--config", str(cfg)])
        out = capsys.readouterr()
        assert code == 0 and f"created login {name}" in out.out
        assert PASSWORD not in out.out + out.err
    finally:
        conn = await asyncpg.connect(pg_admin_dsn)
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        await conn.close()


async def test_dump_then_restore_into_an_empty_database_keeps_every_row(
        db: Database, db_dsn: str, empty_db_dsn: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd db dump` then `syncd db restore --yes` on an empty database gives the same data."""
    async with db.connection() as conn:
        await conn.execute("INSERT INTO local.terminals (sn, alias) VALUES ('SN-1', 'Front door')")
        await conn.execute("INSERT INTO ops.sync_runs (job, status, runner) VALUES ('x', 'ok', 't')")
    source, target = tmp_path / "source.toml", tmp_path / "target.toml"
    source.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n')
    target.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{empty_db_dsn}"\n')
    dump = tmp_path / "syncd.dump"
    assert await asyncio.to_thread(main, ["db", "dump", "-o", str(dump), "--config", str(source)]) == 0
    assert dump.stat().st_size > 0
    assert await asyncio.to_thread(main, ["db", "restore", str(dump), "--config", str(target)]) == 1
    assert "pass --yes" in capsys.readouterr().err  # not a terminal, no --yes: nothing restored
    assert await asyncio.to_thread(main, ["db", "restore", str(dump), "--yes",
                                          "--config", str(target)]) == 0
    restored = await asyncpg.connect(empty_db_dsn)
    try:
        assert await restored.fetchval("SELECT alias FROM local.terminals WHERE sn = 'SN-1'") == \
            "Front door"
        assert await restored.fetchval("SELECT count(*) FROM ops.sync_runs WHERE job = 'x'") == 1
        assert await restored.fetchval("SELECT count(*) FROM ops.schema_migrations") == \
            await db.fetchval("migrations_applied_count")
        # The grants travel with the dump: the reporting role can read the restored views.
        assert await restored.fetchval(
            "SELECT has_table_privilege('syncd_report', 'report.terminals', 'SELECT')")
    finally:
        await restored.close()

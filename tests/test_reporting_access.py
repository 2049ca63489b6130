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
from tests.test_operator_cli import cli

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


@pytest.fixture
async def roles(pg_admin_dsn: str, db_dsn: str) -> AsyncIterator[list[str]]:
    """Role names a test creates (cluster-wide), dropped with whatever they own afterwards."""
    made: list[str] = []
    yield made
    conn = await asyncpg.connect(db_dsn)  # a superuser on the test's database
    try:
        for name in made:
            if await conn.fetchval("SELECT to_regrole($1) IS NOT NULL", name):
                await conn.execute(f'DROP OWNED BY "{name}"')
                await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()


def reader_config(tmp_path: Path, dsn: str) -> tuple[Path, Path]:
    """A config file for `dsn` and a password file for `db reader`."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{dsn}"\n')
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    return cfg, secret


async def stored_password(conn: asyncpg.Connection, name: str) -> str | None:
    """The role's stored password (verifier), read as a superuser."""
    value = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", name)
    return None if value is None else str(value)


async def test_db_reader_refuses_a_superuser_and_changes_nothing(
        db_dsn: str, tmp_path: Path) -> None:
    """`db reader <superuser>` (e.g. postgres) is refused in one line, exit 1; no password is set."""
    conn = await asyncpg.connect(db_dsn)
    try:
        superuser = str(await conn.fetchval("SELECT current_user"))
        before = await stored_password(conn, superuser)
        cfg, secret = reader_config(tmp_path, db_dsn)
        proc = await asyncio.to_thread(cli, "db", "reader", superuser, "--password-file",
                                       str(secret), "--config", str(cfg))
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            f"syncd db reader: refused: role {superuser} exists and is a superuser: `db reader` "
            "makes new roles and changes only its own readers"]
        assert await stored_password(conn, superuser) == before
        assert not await conn.fetchval("SELECT pg_has_role($1, 'syncd_report', 'MEMBER') "
                                       "AND NOT rolsuper FROM pg_roles WHERE rolname = $1",
                                       superuser)
    finally:
        await conn.close()


async def test_db_reader_refuses_syncd_own_login(db_dsn: str, tmp_path: Path,
                                                 roles: list[str]) -> None:
    """syncd logged in as a non-superuser role: `db reader <that role>` is refused, no password."""
    own = f"syncd_own_{uuid.uuid4().hex[:8]}"
    roles.append(own)
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(f'CREATE ROLE "{own}" LOGIN CREATEROLE')
        cfg, secret = reader_config(tmp_path, as_user(db_dsn, own))
        proc = await asyncio.to_thread(cli, "db", "reader", own, "--password-file", str(secret),
                                       "--config", str(cfg))
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines() == [
            f"syncd db reader: refused: role {own} exists and is syncd's own login: `db reader` "
            "makes new roles and changes only its own readers"]
        assert await stored_password(conn, own) is None
    finally:
        await conn.close()


async def test_db_reader_refuses_roles_that_are_more_than_a_reader(
        db_dsn: str, tmp_path: Path, roles: list[str]) -> None:
    """An existing role that is not a plain syncd_report member is neither re-passworded nor
    dropped: not in the group, an attribute, another membership, a member of its own, an object it
    owns. Each refusal is one line naming the reason, exit 1; the role is left as it was."""
    tag = uuid.uuid4().hex[:8]
    cases = {
        f"outsider_{tag}": ("LOGIN", "is not a member of syncd_report"),
        f"maker_{tag}": ("LOGIN CREATEDB IN ROLE syncd_report", "has CREATEDB"),
        f"wide_{tag}": ("LOGIN IN ROLE syncd_report, pg_read_all_data",
                        "is also a member of pg_read_all_data"),
        f"group_{tag}": ("NOLOGIN IN ROLE syncd_report", f"is granted to outsider_{tag}"),
        f"owner_{tag}": ("LOGIN IN ROLE syncd_report", "owns objects or holds privileges"),
    }
    roles.extend(cases)
    conn = await asyncpg.connect(db_dsn)
    try:
        for name, (options, _) in cases.items():
            await conn.execute(f'CREATE ROLE "{name}" {options}')
        await conn.execute(f'GRANT "group_{tag}" TO "outsider_{tag}"')
        await conn.execute(f'CREATE TABLE local.owned_{tag} (x int)')
        await conn.execute(f'ALTER TABLE local.owned_{tag} OWNER TO "owner_{tag}"')
        cfg, secret = reader_config(tmp_path, db_dsn)
        for name, (_, reason) in cases.items():
            made = await asyncio.to_thread(cli, "db", "reader", name, "--password-file",
                                           str(secret), "--config", str(cfg))
            dropped = await asyncio.to_thread(cli, "db", "reader", "drop", name, "--yes",
                                              "--config", str(cfg))
            for proc in (made, dropped):
                lines = proc.stderr.strip().splitlines()
                assert proc.returncode == 1 and len(lines) == 1, (name, proc.stderr)
                assert lines[0].startswith(f"syncd db reader: refused: role {name} ")
                assert reason in lines[0], (name, lines[0])
            assert await stored_password(conn, name) is None
            assert await conn.fetchval("SELECT to_regrole($1) IS NOT NULL", name)
    finally:
        await conn.close()


async def test_db_reader_creates_updates_lists_and_drops_a_reader(
        db_dsn: str, tmp_path: Path, roles: list[str]) -> None:
    """A new name is created (a SCRAM verifier stored, never the password), again re-passworded;
    `list` shows it as a reader; `drop` needs --yes off a terminal, then ends its open session and
    drops it."""
    name = f"grafana_{uuid.uuid4().hex[:8]}"
    roles.append(name)
    cfg, secret = reader_config(tmp_path, db_dsn)
    admin = await asyncpg.connect(db_dsn)
    try:
        made = await asyncio.to_thread(cli, "db", "reader", name, "--password-file", str(secret),
                                       "--config", str(cfg))
        assert made.returncode == 0, made.stderr
        assert made.stdout == f"created login {name} in syncd_report (SELECT on report.* only)\n"
        first = await stored_password(admin, name)
        assert first is not None and first.startswith("SCRAM-SHA-256$4096:")
        again = await asyncio.to_thread(cli, "db", "reader", name, "--password-file",
                                        str(secret), "--config", str(cfg))
        assert again.returncode == 0 and again.stdout.startswith(f"updated login {name} ")
        assert await stored_password(admin, name) not in (None, first)  # a new salt
        listed = await asyncio.to_thread(cli, "db", "reader", "list", "--config", str(cfg))
        assert listed.returncode == 0
        assert [line.split() for line in listed.stdout.splitlines() if line.startswith(name)] == \
            [[name, "login", "reader"]]
        session = await asyncpg.connect(as_user(db_dsn, name))
        kept = await asyncio.to_thread(cli, "db", "reader", "drop", name, "--config", str(cfg))
        assert kept.returncode == 1 and "pass --yes" in kept.stderr
        assert await admin.fetchval("SELECT to_regrole($1) IS NOT NULL", name)
        dropped = await asyncio.to_thread(cli, "db", "reader", "drop", name, "--yes",
                                          "--config", str(cfg))
        assert dropped.returncode == 0, dropped.stderr
        assert dropped.stdout == f"dropped login {name}; ended 1 open session(s)\n"
        assert not await admin.fetchval("SELECT to_regrole($1) IS NOT NULL", name)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await session.fetchval("SELECT 1")
        listed = await asyncio.to_thread(cli, "db", "reader", "list", "--config", str(cfg))
        assert name not in listed.stdout
    finally:
        await admin.close()


async def test_db_reader_usage_mistakes_are_one_line_each(db_dsn: str, tmp_path: Path) -> None:
    """Bad names, `drop` without a name and `list NAME` are refused before any database work."""
    cfg, secret = reader_config(tmp_path, db_dsn)
    for argv, problem in ((["Bad-Name"], "the name must be lower case"),
                          (["pg_monitor"], "(not pg_…)"),
                          (["drop"], "drop needs the NAME"),
                          (["list", "x"], "list takes no NAME")):
        proc = await asyncio.to_thread(cli, "db", "reader", *argv, "--password-file", str(secret),
                                       "--config", str(cfg))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and problem in lines[0], (argv, lines)

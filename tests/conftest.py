"""Shared fixtures: a real PostgreSQL with a migrated template database cloned per test.

`SYNCD_TEST_DATABASE_URL` (a superuser DSN) points the suite at an existing server; otherwise an
embedded PostgreSQL (pgserver) is started for the session under a temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import structlog

from syncd.db.migrate import migrate
from syncd.db.pool import Database
from syncd.settings.core import Settings

TEMPLATE = f"syncd_tpl_{os.getpid()}"
# A developer's SYNCD_* settings (SYNCD_DATABASE__URL, SYNCD_CONFIG, ...) must not reach the code
# under test: settings read the environment. Only the suite's own variable is kept.
TEST_DATABASE_URL = os.environ.get("SYNCD_TEST_DATABASE_URL")
for _name in [n for n in os.environ if n.startswith("SYNCD_")]:
    del os.environ[_name]
pytest_plugins = ["tests.served"]  # the serve_syncd fixture


def dsn_for(admin_dsn: str, dbname: str) -> str:
    """The same server's DSN for another database."""
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A superuser DSN to a real PostgreSQL server for the whole session."""
    url = TEST_DATABASE_URL
    if url:
        yield url
        return
    import pgserver

    # Short path: the server's unix socket lives in the data dir and socket paths are limited.
    with tempfile.TemporaryDirectory(prefix="syncd-pg-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


async def _admin(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database with every migration applied, used as the template for each test."""

    async def build() -> None:
        await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await _admin(pg_admin_dsn, f'CREATE DATABASE "{TEMPLATE}"')
        db = await Database.connect(dsn_for(pg_admin_dsn, TEMPLATE), min_size=1, max_size=2)
        try:
            await migrate(db)
        finally:
            await db.close()

    asyncio.run(build())
    yield TEMPLATE
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))


@pytest.fixture
async def empty_db_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    """DSN of a brand-new empty database, dropped after the test."""
    name = f"syncd_empty_{uuid.uuid4().hex[:12]}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}"')
    yield dsn_for(pg_admin_dsn, name)
    await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_dsn(pg_admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    """DSN of a fresh, fully migrated database cloned from the template, dropped after the test."""
    name = f"syncd_t_{uuid.uuid4().hex[:12]}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield dsn_for(pg_admin_dsn, name)
    await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[Database]:
    """A connected Database on a fresh migrated database."""
    database = await Database.connect(db_dsn, min_size=1, max_size=5)
    yield database
    await database.close()


@pytest.fixture
def make_settings(db_dsn: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings for the test database; keyword sections override the defaults."""

    def build(**sections: Any) -> Settings:
        data: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "database": {"url": db_dsn},
            "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout": 5},
            "admin": {"host": "127.0.0.1", "port": 0},
            "jobs": {"housekeeping": {"enabled": False}},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return Settings(**data)

    return build


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session, closed after the test."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI tests configure logging for the process (onto a captured stdout); undo it after each."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Run pg_ctl on an embedded server, as the "pgserver" user when root (as pgserver does)."""
    import pgserver

    as_user = {"user": "pgserver"} if os.geteuid() == 0 else {}
    pgserver.pg_ctl(list(args), pgdata=pgdata, **as_user)


def pg_start(pgdata: Path) -> None:
    """Start a stopped embedded server again, with the options pgserver uses."""
    pg_ctl(pgdata, "-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", str(pgdata / "log"), "start")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short temp dir: unix socket paths (PostgreSQL's, NOTIFY_SOCKET) must stay under ~100 bytes.

    An embedded server a test restarted under it is stopped afterwards: pgserver's own cleanup only
    stops the postmaster it started, so a restarted one would outlive the test.
    """
    path = Path(tempfile.mkdtemp(prefix="sd-"))
    yield path
    pgdata = path / "postgres"
    if (pgdata / "postmaster.pid").exists():
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(pgdata, "-w", "-m", "immediate", "stop")
    shutil.rmtree(path, ignore_errors=True)

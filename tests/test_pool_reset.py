"""Pooled connections: one self-contained statement skips asyncpg's session reset; nothing else does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd.db import queries
from syncd.db.pool import ADVISORY_NAMESPACE, Database


@pytest.fixture
async def one_conn(db_dsn: str) -> AsyncIterator[Database]:
    """A Database whose pool holds a single connection, so every call reuses the same session."""
    database = await Database.connect(db_dsn, min_size=1, max_size=1)
    yield database
    await database.close()


@pytest.fixture
async def pg(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection of the test's own, to watch syncd's session from outside."""
    conn = await asyncpg.connect(db_dsn)
    yield conn
    await conn.close()


async def _last_query(pg: asyncpg.Connection) -> str:
    """The last statement syncd's (only) session ran, as PostgreSQL reports it."""
    return str(await pg.fetchval(
        "SELECT query FROM pg_stat_activity WHERE application_name = 'syncd' "
        "AND datname = current_database()"))


async def test_a_named_statement_returns_its_connection_without_the_reset_round_trip(
        one_conn: Database, pg: asyncpg.Connection) -> None:
    """After db.fetchval() of a plain named query the session's last statement is that query;
    after a connection used directly it is asyncpg's reset (RESET ALL)."""
    assert await one_conn.fetchval("advisory_key", "some-job") is not None
    assert await _last_query(pg) == queries.get("advisory_key")
    async with one_conn.connection() as conn:
        await conn.execute("SELECT 1")
    assert "RESET ALL" in await _last_query(pg)


async def test_session_state_is_still_shed_where_a_statement_or_a_caller_can_leave_it(
        one_conn: Database, pg: asyncpg.Connection) -> None:
    """A setting and a session lock taken on a borrowed connection, and a session lock taken by
    the named advisory_try_lock query, are all gone before the connection is used again."""
    async with one_conn.connection() as conn:
        await conn.execute("SET work_mem = '77MB'")
        await conn.execute("SELECT pg_advisory_lock($1, 1)", ADVISORY_NAMESPACE)
    assert queries.leaves_session_state("advisory_try_lock")
    assert await one_conn.fetchval("advisory_try_lock", ADVISORY_NAMESPACE, 2) is True
    held = await pg.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND classid = $1", ADVISORY_NAMESPACE)
    assert held == 0
    async with one_conn.connection() as conn:
        assert await conn.fetchval("SHOW work_mem") != "77MB"

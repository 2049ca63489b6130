"""The asyncpg pool behind one small class; driver errors become syncd's own here, once."""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from syncd.db import queries
from syncd.errors import DatabaseError, DatabaseUnavailable, PoolExhausted

if TYPE_CHECKING:
    from syncd.metrics import PoolStats

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# Exceptions meaning "the database cannot be reached right now" rather than "the query is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # pool closing, connection lost mid-use
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # Raised when a query starts on a connection the server has just terminated (shutdown,
    # pg_terminate_backend): the protocol is in a state it cannot leave (MagicStack/asyncpg#1069).
    asyncpg.InternalClientError,
)

# All advisory locks taken by syncd use this first key, so they never collide with other software.
ADVISORY_NAMESPACE = 0x5C0D

ACQUIRE_TIMEOUT = 5.0  # seconds a caller waits for a free pooled connection (the default)


def split_pool(max_size: int) -> tuple[int, int]:
    """database.pool_max_size as (request paths' pool, job runs' pool): jobs get half, rounded
    down, so the request paths never wait behind a job run."""
    jobs = max_size // 2
    return max_size - jobs, jobs


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """Re-raise asyncpg and socket errors as DatabaseUnavailable / DatabaseError."""
    try:
        yield
    except _UNAVAILABLE as err:
        raise DatabaseUnavailable(f"database unavailable: {type(err).__name__}: {err}") from err
    except asyncpg.PostgresError as err:
        raise DatabaseError(f"{type(err).__name__}: {err}") from err


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])  # byte 0 is the jsonb binary format version (1)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so COPY (always binary in asyncpg) can carry json/jsonb columns too.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode,
                              schema="pg_catalog", format="binary")
    await conn.set_type_codec("json", encoder=lambda v: json.dumps(v).encode(),
                              decoder=json.loads, schema="pg_catalog", format="binary")


# True while one named statement runs on a connection taken just for it (Database.execute, fetch,
# fetchrow, fetchval): such a statement cannot leave session state behind (leaves_session_state),
# so the pool returns the connection without asyncpg's session reset, a second round trip per
# call (advisory unlock, CLOSE ALL, UNLISTEN *, RESET ALL). An open transaction is still rolled
# back, and a connection used through connection() or transaction() is always reset.
_ONE_STATEMENT: contextvars.ContextVar[bool] = contextvars.ContextVar("syncd_one_statement",
                                                                      default=False)


async def _reset_session(conn: asyncpg.Connection) -> None:
    if not _ONE_STATEMENT.get():
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)


@contextlib.contextmanager
def _statement(name: str) -> Iterator[str]:
    """The named query's SQL, run inside translate(); marked as one self-contained statement
    (see _ONE_STATEMENT) unless it can leave session state."""
    token = None if queries.leaves_session_state(name) else _ONE_STATEMENT.set(True)
    try:
        with translate():
            yield queries.get(name)
    finally:
        if token is not None:
            _ONE_STATEMENT.reset(token)


class Database:
    """A pool plus named-query helpers. Every database call in syncd goes through this class."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, name: str = "main",
                 acquire_timeout: float = ACQUIRE_TIMEOUT) -> None:
        self.pool = pool
        self.dsn = dsn
        self.name = name  # which pool this is, in errors and metrics: requests, jobs, main
        self.acquire_timeout = acquire_timeout
        self.acquire_timeouts = 0  # waits for a connection that gave up (syncd_db_acquire_timeouts)

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10,
                      connect_timeout: float = 5.0, command_timeout: float = 60.0,
                      name: str = "main", acquire_timeout: float = ACQUIRE_TIMEOUT) -> Database:
        """Open a pool named `name` to `dsn`."""
        with translate():
            pool = await asyncpg.create_pool(
                dsn, min_size=min(min_size, max_size), max_size=max_size,
                timeout=connect_timeout, command_timeout=command_timeout,
                init=_init_connection, reset=_reset_session,
                server_settings={"application_name": "syncd"},
            )
        return cls(pool, dsn, name=name, acquire_timeout=acquire_timeout)

    @property
    def max_size(self) -> int:
        """How many connections this pool may open."""
        return self.pool.get_max_size()

    def stats(self) -> PoolStats:
        """The pool's size, connections in use and acquire timeouts so far, for /metrics."""
        from syncd.metrics import PoolStats  # here: a one-shot command never imports prometheus

        size = self.pool.get_size()
        return PoolStats(self.name, self.max_size, size - self.pool.get_idle_size(),
                         self.acquire_timeouts)

    def _acquire(self, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)

    def _exhausted(self, timeout: float, err: TimeoutError) -> PoolExhausted:
        self.acquire_timeouts += 1
        in_use = self.stats().in_use
        return PoolExhausted(f"database unavailable: no connection free in the {self.name} pool "
                             f"within {timeout:g}s ({in_use} of {self.max_size} in use)")

    async def close(self) -> None:
        """Close the pool, waiting for connections in use (bounded by asyncpg's own timeout)."""
        with translate():
            await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection (waiting at most `timeout`, else database.acquire_timeout_seconds),
        errors translated."""
        with translate():
            async with self._acquire(timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside a transaction."""
        with translate():
            async with self._acquire() as conn, conn.transaction():
                yield conn

    async def execute(self, name: str, *args: Any) -> str:
        """Run the named query; return its status tag."""
        with _statement(name) as text:
            async with self._acquire() as conn:
                return str(await conn.execute(text, *args))

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        """Run the named query; return all rows."""
        with _statement(name) as text:
            async with self._acquire() as conn:
                return list(await conn.fetch(text, *args))

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        """Run the named query; return the first row or None."""
        with _statement(name) as text:
            async with self._acquire() as conn:
                return await conn.fetchrow(text, *args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        """Run the named query; return the first column of the first row."""
        with _statement(name) as text:
            async with self._acquire() as conn:
                return await conn.fetchval(text, *args)

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers within `timeout`."""
        with translate():
            async with self._acquire(timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)


class _Acquire:
    """`async with`: a connection from the pool within the timeout, else PoolExhausted (counted).

    A class rather than a generator-based context manager: every named statement passes through
    here, intake's and the registry's included.
    """

    __slots__ = ("conn", "db", "timeout")

    def __init__(self, db: Database, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self.conn: PoolConnectionProxy[asyncpg.Record] | None = None

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        try:
            self.conn = await self.db.pool.acquire(timeout=self.timeout)
        except TimeoutError as err:
            raise self.db._exhausted(self.timeout, err) from err
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self.db.pool.release(conn)

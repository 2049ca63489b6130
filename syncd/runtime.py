"""Resources shared by the daemon and the one-shot CLI commands, as async context managers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import structlog

import syncd
from syncd.backoff import DATABASE_WAIT
from syncd.db.embedded import embedded_postgres, initialised, running_dsn
from syncd.db.migrate import migrate
from syncd.db.pool import Database, split_pool
from syncd.errors import DatabaseMissing, DatabaseUnavailable
from syncd.settings.core import Settings

log = structlog.get_logger(__name__)

STARTUP_DB_WAIT = 30.0  # seconds to keep trying a database that is not up yet at start


async def _connect(dsn: str, settings: Settings, max_wait: float, *, name: str = "main",
                   max_size: int | None = None) -> Database:
    conf = settings.database
    waited, attempt = 0.0, 0
    while True:
        try:
            return await Database.connect(
                dsn, min_size=conf.pool_min_size, max_size=max_size or conf.pool_max_size,
                connect_timeout=conf.connect_timeout, command_timeout=conf.command_timeout,
                name=name, acquire_timeout=conf.acquire_timeout_seconds)
        except DatabaseUnavailable as err:
            if waited >= max_wait:
                raise DatabaseUnavailable(f"gave up after {waited:.0f}s: {err}") from err
            if waited == 0:
                log.warning("db.waiting", error=str(err))
            delay = DATABASE_WAIT.delay(attempt)
            await asyncio.sleep(delay)
            waited, attempt = waited + delay, attempt + 1


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, apply_migrations: bool = True,
                        wait: float = STARTUP_DB_WAIT, borrow: bool = True, create: bool = False,
                        name: str = "main", max_size: int | None = None) -> AsyncIterator[Database]:
    """Connect to database.url (or start the embedded server), migrate, and yield the Database:
    one pool named `name` of `max_size` connections (default: database.pool_max_size).

    A database that is not up yet is retried for `wait` seconds. With `borrow` (one-shot
    commands), an embedded server that is already running (the daemon's) is used through its
    socket without joining it: the command neither starts, reconfigures nor stops it, and does
    not need to own its files (root running `syncd status` next to the service). The daemon
    passes borrow=False: it must own the server it depends on.

    Only `create` (the daemon, `migrate`, `db restore`) may initdb a new embedded database; any
    other command meeting an empty data_dir raises DatabaseMissing instead of creating a second,
    empty database where one was expected (a data_dir resolved against the wrong directory).
    """
    async with contextlib.AsyncExitStack() as stack:
        running = running_dsn(settings.data_dir) if borrow else None
        if settings.database.url is not None:
            dsn = settings.database.url.get_secret_value()
        elif running is not None:
            dsn = running
        else:
            if not create and not initialised(settings.data_dir):
                raise DatabaseMissing(
                    f"no database under {(settings.data_dir / 'postgres').absolute()}, and this "
                    "command creates none: check data_dir (a relative one is relative to the "
                    "config file), or create it with `syncd migrate` or `syncd run`")
            dsn = await stack.enter_async_context(
                embedded_postgres(settings.data_dir, settings.database.embedded_listen))
        db = await _connect(dsn, settings, wait, name=name, max_size=max_size)
        stack.push_async_callback(db.close)
        if apply_migrations:
            await migrate(db)
        yield db


@dataclasses.dataclass(frozen=True)
class Pools:
    """The daemon's two pools: one for the request paths, one for job runs (split_pool)."""

    requests: Database  # intake, registry, inbox worker, alert deliverer, health, status
    jobs: Database  # scheduled job runs and their run records


@contextlib.asynccontextmanager
async def open_pools(settings: Settings, *, borrow: bool = False,
                     create: bool = False) -> AsyncIterator[Pools]:
    """As open_database, but database.pool_max_size split in two pools, so job runs can never
    take the connections the request paths need."""
    requests_size, jobs_size = split_pool(settings.database.pool_max_size)
    async with open_database(settings, borrow=borrow, create=create, name="requests",
                             max_size=requests_size) as requests:
        jobs = await _connect(requests.dsn, settings, STARTUP_DB_WAIT, name="jobs",
                              max_size=jobs_size)
        try:
            yield Pools(requests, jobs)
        finally:
            await jobs.close()


@contextlib.asynccontextmanager
async def open_http(trace_configs: list[aiohttp.TraceConfig] | None = None
                    ) -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for every vendor, with bounded timeouts and connection pool."""
    timeout = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=32, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, raise_for_status=False,
            trace_configs=trace_configs,
            headers={"User-Agent": f"syncd/{syncd.__version__}"}) as session:
        yield session

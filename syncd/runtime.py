"""Resources shared by the daemon and the one-shot CLI commands, as async context managers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import structlog

import syncd
from syncd.backoff import DATABASE_WAIT
from syncd.db.embedded import embedded_postgres
from syncd.db.migrate import migrate
from syncd.db.pool import Database
from syncd.errors import DatabaseUnavailable
from syncd.jobs.base import Job
from syncd.jobs.housekeeping import HousekeepingJob
from syncd.reconcile.job import ReconcileJob, build_remediators
from syncd.settings import Settings
from syncd.sync.biotime import BioTimePunchesJob, BioTimeTerminalsJob, biotime_client
from syncd.sync.codelocks import K3ClientsJob, K3Context, K3LocksJob
from syncd.sync.k3_audit import K3AuditJob
from syncd.sync.knoxguard import KnoxDevicesJob, KnoxUploadsJob, knoxguard_client
from syncd.sync.neolock import NeoLockDevicesJob, NeoLockUploadsJob, neolock_client
from syncd.sync.subscription import NeoLockSubscriptionJob
from syncd.vendors.neolock.client import NeoLockClient

log = structlog.get_logger(__name__)

STARTUP_DB_WAIT = 30.0  # seconds to keep trying a database that is not up yet at start


async def _connect(dsn: str, settings: Settings) -> Database:
    conf = settings.database
    waited, attempt = 0.0, 0
    while True:
        try:
            return await Database.connect(
                dsn, min_size=conf.pool_min_size, max_size=conf.pool_max_size,
                connect_timeout=conf.connect_timeout, command_timeout=conf.command_timeout)
        except DatabaseUnavailable as err:
            if waited >= STARTUP_DB_WAIT:
                raise DatabaseUnavailable(f"gave up after {waited:.0f}s: {err}") from err
            if waited == 0:
                log.warning("db.waiting", error=str(err))
            delay = DATABASE_WAIT.delay(attempt)
            await asyncio.sleep(delay)
            waited, attempt = waited + delay, attempt + 1


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, apply_migrations: bool = True
                        ) -> AsyncIterator[Database]:
    """Connect to database.url (or start the embedded server), migrate, and yield the Database."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.database.url is not None:
            dsn = settings.database.url.get_secret_value()
        else:
            dsn = await stack.enter_async_context(embedded_postgres(settings.data_dir))
        db = await _connect(dsn, settings)
        stack.push_async_callback(db.close)
        if apply_migrations:
            await migrate(db)
        yield db


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


def build_jobs(settings: Settings, db: Database, http: aiohttp.ClientSession, *,
               neolock: NeoLockClient | None = None, once: bool = False) -> dict[str, Job]:
    """Every job this configuration enables, by name.

    Pass `neolock` to share one client (one token, one rate limiter) with the inbox worker.
    `once`: for `syncd sync --once`, run quota-planned jobs now rather than when they are due.
    """
    jobs: list[Job] = [HousekeepingJob()]
    if settings.neolock is not None:
        client = neolock or neolock_client(settings.neolock, http)
        max_age = dt.timedelta(hours=settings.neolock.detail_max_age_hours)
        jobs += [NeoLockSubscriptionJob(db, client, settings), NeoLockUploadsJob(db, client),
                 NeoLockDevicesJob(db, client, detail_max_age=max_age)]
    if settings.knoxguard is not None:  # one client: one token and one rate limit for both jobs
        knox = knoxguard_client(settings.knoxguard, http)
        jobs += [KnoxUploadsJob(db, knox, settings.knoxguard.page_size),
                 KnoxDevicesJob(db, knox, settings.knoxguard.page_size)]
    if settings.biotime is not None:  # a client per job, so that each run counts its own requests
        jobs += [BioTimeTerminalsJob(db, biotime_client(settings.biotime, http), settings.biotime),
                 BioTimePunchesJob(db, biotime_client(settings.biotime, http), settings.biotime)]
    if settings.codelocks is not None:  # quota-planned: each run asks the budget planner first
        k3 = K3Context(db, settings.codelocks, http)
        jobs += [K3LocksJob(k3, gated=not once), K3AuditJob(k3, gated=not once),
                 K3ClientsJob(k3, gated=not once)]
    if settings.reconcile.mode != "off":
        jobs.append(ReconcileJob(db, settings, build_remediators(settings, db, http,
                                                                 neolock=neolock)))
    return {job.name: job for job in jobs}

"""syncd's PostgreSQL advisory locks: one helper for every lock (job runs, migrations).

Every lock is (ADVISORY_NAMESPACE, key), so syncd's locks never collide with other software's. A
name is turned into a key by PostgreSQL's own `hashtext`, so every replica agrees on it.

Migrations hold their lock on a pooled connection for the few seconds they take
(`advisory_lock`). Job runs, which can take minutes each and number a dozen at once, hold theirs
on one connection per process outside the pools (`JobLocks`), so a run pins no pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg
import structlog

from syncd.backoff import DATABASE_WAIT
from syncd.db.pool import ADVISORY_NAMESPACE, Connection, translate
from syncd.db.queries import get as sql
from syncd.errors import DatabaseError, DatabaseUnavailable

log = structlog.get_logger(__name__)

MIGRATIONS = 1  # the migration runner's key


async def key_for(conn: Connection, name: str) -> int:
    """The lock key of `name`."""
    with translate():
        return int(await conn.fetchval(sql("advisory_key"), name))


@contextlib.asynccontextmanager
async def advisory_lock(conn: Connection, key: int | str, *, wait: bool = True
                        ) -> AsyncIterator[bool]:
    """Hold the lock `key` (a number, or a name) on `conn` for the block; yield whether it was
    taken (always True when `wait`). It is released when the block ends, however it ends."""
    number = await key_for(conn, key) if isinstance(key, str) else key
    with translate():
        if wait:
            await conn.execute(sql("advisory_lock"), ADVISORY_NAMESPACE, number)
            taken = True
        else:
            taken = bool(await conn.fetchval(sql("advisory_try_lock"), ADVISORY_NAMESPACE, number))
    try:
        yield taken
    finally:
        if taken:
            with translate():
                await conn.execute(sql("advisory_unlock"), ADVISORY_NAMESPACE, number)


@dataclasses.dataclass(eq=False)
class Lease:
    """One job lock held on the lock connection. `lost` is set when the connection (and so the
    lock) is gone, with `reason`; the run it covered must stop."""

    name: str
    conn: asyncpg.Connection
    lost: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    reason: str | None = None

    def lose(self, reason: str) -> None:
        """The lock is gone (its connection died)."""
        self.reason = reason
        self.lost.set()


class JobLocks:
    """One connection per process, outside the pools, holding the session advisory lock of every
    job run in progress (a run holds no pooled connection for its lock).

    The connection serves one statement at a time (an asyncio.Lock). The same name cannot be
    held twice in one process (session locks are re-entrant, so the process checks its own
    leases first). When the connection is lost (PostgreSQL restart, a probe that does not
    answer), every lease on it is marked lost: the locks are gone server-side, so the runs must
    stop. The next `hold()` reconnects, no sooner than the shared database backoff allows.
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0, probe_seconds: float = 10.0,
                 statement_timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._probe_seconds = probe_seconds  # how soon a silently dead connection is noticed
        self._timeout = statement_timeout
        self._conn: asyncpg.Connection | None = None
        self._use = asyncio.Lock()
        self._held: dict[str, Lease] = {}
        self._failures = 0  # consecutive failed connects: the backoff's attempt number
        self._retry_at = 0.0  # loop time before which no reconnect is tried
        self._watcher: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()  # lock/unlock statements that outlived a cancel

    async def __aenter__(self) -> JobLocks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def held(self) -> list[str]:
        """Names of the job locks this process holds now."""
        return sorted(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, name: str, *, wait: float = 0.0) -> AsyncIterator[Lease | None]:
        """Hold job lock `name` for the block; yield its Lease, or None when another runner
        (another process, or another run in this one) still held it after `wait` seconds."""
        lease = await self._take(name, wait)
        try:
            yield lease
        finally:
            if lease is not None:
                await asyncio.shield(self._spawn(self._release(lease)))

    async def close(self) -> None:
        """Drop every lock this process holds and close the connection."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._pending:
            await asyncio.wait(self._pending, timeout=self._timeout)
        conn, self._conn = self._conn, None
        for lease in self._held.values():
            lease.lose("the lock connection was closed")
        self._held.clear()
        if conn is not None:
            try:
                await conn.close(timeout=self._timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()  # closing the session releases its locks either way

    async def _take(self, name: str, wait: float) -> Lease | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        attempt = 0
        while True:
            task: asyncio.Task[Lease | None] = self._spawn(self._try(name))
            try:
                # Shielded: a cancelled caller must not leave a lock taken for nobody.
                lease = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.add_done_callback(self._orphaned)
                raise
            if lease is not None or loop.time() >= deadline:
                return lease
            await asyncio.sleep(min(DATABASE_WAIT.delay(attempt), max(deadline - loop.time(), 0)))
            attempt += 1

    def _spawn(self, statement: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A lock or unlock statement as a task that runs to its end whoever waits for it."""
        task = asyncio.ensure_future(statement)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    def _orphaned(self, task: asyncio.Task[Lease | None]) -> None:
        """A lock statement whose caller was cancelled has ended: give back what it took."""
        if not task.cancelled() and task.exception() is None:
            lease = task.result()
            if lease is not None:
                self._spawn(self._release(lease))

    async def _try(self, name: str) -> Lease | None:
        async with self._use:
            if name in self._held:
                return None  # another run of this process holds it
            conn = await self._connected()
            try:
                with translate():
                    taken = await conn.fetchval(sql("job_lock_try"), ADVISORY_NAMESPACE, name,
                                                timeout=self._timeout)
            except DatabaseUnavailable as err:
                self._lost(conn, str(err))
                raise
            if not taken:
                return None
            lease = self._held[name] = Lease(name, conn)
            if self._watcher is None or self._watcher.done():
                self._watcher = asyncio.create_task(self._watch(), name="job-locks-probe")
            return lease

    async def _release(self, lease: Lease) -> None:
        async with self._use:
            if self._held.get(lease.name) is lease:
                del self._held[lease.name]
            conn = lease.conn
            if lease.lost.is_set() or conn is not self._conn:
                return  # the lock went with its connection
            try:
                with translate():
                    await conn.fetchval(sql("job_lock_release"), ADVISORY_NAMESPACE, lease.name,
                                        timeout=self._timeout)
            except DatabaseUnavailable as err:
                self._lost(conn, str(err))

    async def _connected(self) -> asyncpg.Connection:
        if self._conn is not None:
            if not self._conn.is_closed():
                return self._conn
            self._lost(self._conn, "the lock connection was closed")  # before its listener ran
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            raise DatabaseUnavailable("database unavailable: the job lock connection is down; "
                                      f"next try in {self._retry_at - loop.time():.1f}s")
        try:
            with translate():
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout,
                                             server_settings={"application_name": "syncd locks"})
        except DatabaseUnavailable:
            self._retry_at = loop.time() + DATABASE_WAIT.delay(self._failures)
            self._failures += 1
            raise
        self._failures = 0
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        return conn

    def _terminated(self, conn: Any) -> None:
        self._lost(conn, "the lock connection was closed by the server")

    def _lost(self, conn: Any, reason: str) -> None:
        """`conn` is gone: so is every lock on it."""
        gone = [lease for lease in self._held.values() if lease.conn is conn]
        for lease in gone:
            del self._held[lease.name]
            lease.lose(reason)
        current = self._conn
        if current is not None and conn is current:
            self._conn = None
        elif not gone:
            return  # an older connection, already dealt with
        if not conn.is_closed():
            conn.terminate()
        log.warning("job_locks.lost", jobs=sorted(lease.name for lease in gone), reason=reason)

    async def _watch(self) -> None:
        """While any lock is held, check every probe_seconds that the connection still answers:
        one silently cut off (a network partition) loses its locks server-side."""
        while self._held:
            await asyncio.sleep(self._probe_seconds)
            conn = self._conn
            if conn is None or not self._held:
                continue
            try:
                async with self._use:
                    if conn is self._conn:
                        with translate():
                            await conn.fetchval(sql("job_lock_probe"), timeout=self._timeout)
            except DatabaseError as err:
                self._lost(conn, f"the lock connection did not answer: {err}")
            except Exception as err:  # a bug: give the locks up rather than run unguarded
                log.exception("job_locks.probe_crashed")
                self._lost(conn, f"internal error: {type(err).__name__}")

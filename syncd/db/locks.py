"""syncd's PostgreSQL advisory locks: one helper for every lock (job runs, migrations).

Every lock is (ADVISORY_NAMESPACE, key), so syncd's locks never collide with other software's. A
name is turned into a key by PostgreSQL's own `hashtext`, so every replica agrees on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from syncd.db.pool import ADVISORY_NAMESPACE, Connection, translate
from syncd.db.queries import get as sql

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

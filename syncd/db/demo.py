"""Typed fronts for the queries `syncd demo` runs to seed the business's records and summarise."""

from __future__ import annotations

from collections.abc import Iterable

from syncd.db.pool import Database
from syncd.db.queries import get as sql


async def seed_terminals(db: Database, terminals: Iterable[tuple[str, str]]) -> None:
    """Record terminals (sn, alias) the business knows, keeping existing ones."""
    async with db.connection() as conn:
        await conn.executemany(sql("demo_seed_terminal"), list(terminals))


async def seed_contracts(db: Database, contracts: Iterable[tuple[str, str, str]]) -> None:
    """Record phone contracts (device uid, desired state, contract ref)."""
    async with db.connection() as conn:
        await conn.executemany(sql("demo_seed_contract"), list(contracts))


async def phones_in_drift(db: Database) -> int:
    """Phones in drift (report.phones)."""
    return int(await db.fetchval("demo_phones_in_drift"))


async def event_counts(db: Database) -> tuple[int, int]:
    """(pushes received, pushes processed)."""
    row = await db.fetchrow("demo_event_counts")
    return (0, 0) if row is None else (int(row["received"]), int(row["processed"]))


async def phone_states(db: Database) -> list[tuple[str, int]]:
    """(console state, phones) pairs, most common first."""
    return [(r["console_state"], int(r["n"])) for r in await db.fetch("demo_phone_states")]


async def terminal_states(db: Database) -> list[tuple[str, int]]:
    """(status, terminals) pairs."""
    return [(r["status"], int(r["n"])) for r in await db.fetch("demo_terminal_states")]


async def api_usage(db: Database) -> list[tuple[str, int, int | None]]:
    """(category, calls, quota) of Codelocks this period."""
    return [(r["category"], int(r["calls"]), r["quota"]) for r in await db.fetch("demo_api_usage")]


async def locked_count(db: Database, uids: list[str]) -> int:
    """How many of `uids` NeoLock reports Locked."""
    return int(await db.fetchval("demo_locked_count", uids))


async def seed_k3_clients(db: Database, clients: Iterable[tuple[str, str]]) -> None:
    """Record the smartphone clients the business expects on its K3 locks (lock_id, email)."""
    async with db.transaction() as conn:
        await conn.executemany(sql("demo_seed_k3_client"), list(clients))

"""Reporting logins: roles in `syncd_report` (migration 0007), which may SELECT report.* only."""

from __future__ import annotations

from syncd.db.pool import Database
from syncd.errors import DatabaseError


async def ensure_group(db: Database) -> None:
    """Make sure the syncd_report group exists (a dump's GRANTs name it)."""
    await db.execute("reader_group_ensure")


async def ensure_reader(db: Database, name: str, password: str) -> bool:
    """Create login `name` in syncd_report with `password`, or set the password; True if created."""
    if not await db.fetchval("reader_group_exists"):
        raise DatabaseError("role syncd_report does not exist: migration 0007 could not create it "
                            "(no CREATEROLE); see README, 'Reporting'")
    exists = bool(await db.fetchval("reader_exists", name))
    query = "reader_password_statement" if exists else "reader_create_statement"
    statement = await db.fetchval(query, name, password)
    async with db.connection() as conn:
        await conn.execute(statement)
    return not exists

"""Reporting logins: roles in `syncd_report` (migration 0007), which may SELECT report.* only.

`syncd db reader` makes new roles, and changes or drops only roles that are plain readers (a
member of syncd_report and nothing more): never a superuser, never syncd's own login, never a role
that owns, holds or inherits anything else. Passwords go to the server as SCRAM verifiers, so the
clear text is in no statement (a failed DDL statement is written to the server's log).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import stringprep
import unicodedata

from syncd.db.pool import Database
from syncd.errors import DatabaseError, ReaderRefused

GROUP = "syncd_report"
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


@dataclasses.dataclass(frozen=True)
class ReaderRole:
    """A role as `syncd db reader` judges it (see the reader_roles query)."""

    name: str
    can_login: bool
    is_syncd: bool
    attributes: list[str]
    in_group: bool
    other_groups: list[str]
    members: list[str]
    holdings: int

    def refusal(self) -> str | None:
        """Why this role is not a plain reader that syncd may change or drop; None if it is."""
        if "SUPERUSER" in self.attributes:
            return "is a superuser"
        if self.is_syncd:
            return "is syncd's own login"
        if not self.in_group:
            return f"is not a member of {GROUP} (not a reader made by `syncd db reader`)"
        if self.attributes:
            return f"has {', '.join(self.attributes)}"
        if self.other_groups:
            return f"is also a member of {', '.join(self.other_groups)}"
        if self.members:
            return f"is granted to {', '.join(self.members)}"
        if self.holdings:
            return f"owns objects or holds privileges of its own ({self.holdings})"
        return None


async def ensure_group(db: Database) -> None:
    """Make sure the syncd_report group exists (a dump's GRANTs name it)."""
    await db.execute("reader_group_ensure")


async def reader_roles(db: Database, name: str | None = None) -> list[ReaderRole]:
    """The role `name` (empty list if none), or every member of syncd_report."""
    return [ReaderRole(**dict(row)) for row in await db.fetch("reader_roles", name)]


async def _require_group(db: Database) -> None:
    if not await db.fetchval("reader_group_exists"):
        raise DatabaseError(f"role {GROUP} does not exist: migration 0007 could not create it "
                            "(no CREATEROLE); see README, 'Reporting'")


async def _run(db: Database, query: str, *args: str) -> None:
    """Run the DDL statement that the named query formats (quoted by the server)."""
    statement = await db.fetchval(query, *args)
    async with db.connection() as conn:
        await conn.execute(statement)


async def ensure_reader(db: Database, name: str, password: str) -> bool:
    """Create login `name` in syncd_report, or re-password it if it is a plain reader; True if
    created. Any other existing role raises ReaderRefused."""
    await _require_group(db)
    found = await reader_roles(db, name)
    verifier = scram_verifier(password)
    if not found:
        await _run(db, "reader_create_statement", name, verifier)
        return True
    why = found[0].refusal()
    if why is not None:
        raise ReaderRefused(f"role {name} exists and {why}: `db reader` makes new roles and "
                            "changes only its own readers")
    await _run(db, "reader_password_statement", name, verifier)
    return False


async def drop_reader(db: Database, name: str) -> tuple[int, int]:
    """Drop the plain reader `name`: no new logins, its sessions ended where syncd's user may,
    then DROP ROLE. Returns (sessions that were open, sessions ended)."""
    found = await reader_roles(db, name)
    if not found:
        raise ReaderRefused(f"no role {name}")
    why = found[0].refusal()
    if why is not None:
        raise ReaderRefused(f"role {name} {why}: `db reader drop` drops only readers")
    await _run(db, "reader_nologin_statement", name)
    row = await db.fetchrow("reader_sessions_end", name)
    await _run(db, "reader_drop_statement", name)
    return (row["open"], row["ended"]) if row is not None else (0, 0)


# RFC 4013 (SASLprep), as PostgreSQL applies it to passwords: a password it prohibits is used as
# its raw UTF-8 bytes instead, on the server and in every client.
_PROHIBITED = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
               stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
               stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
               stringprep.in_table_a1)


def saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes for `password` (SASLprep, or the raw text when prohibited)."""
    raw = password.encode("utf-8")
    if password.isascii():
        return raw  # PostgreSQL passes ASCII through unchanged
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password
                     if not stringprep.in_table_b1(c))
    text = unicodedata.normalize("NFKC", mapped)
    if not text or any(check(c) for c in text for check in _PROHIBITED):
        return raw
    right_to_left = any(stringprep.in_table_d1(c) for c in text)  # RFC 3454, section 6
    if right_to_left and (any(stringprep.in_table_d2(c) for c in text) or not (
            stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1]))):
        return raw
    return text.encode("utf-8")


def scram_verifier(password: str, *, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """A SCRAM-SHA-256 verifier for `password`, as PostgreSQL stores it (RFC 5802/7677)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"

"""Typed fronts for the append-only, hash-chained action log (`ops.remediation_log`) and the outbox.

Every action syncd takes or refuses on a vendor or on the app registry (remediation, operator
commands, bans) is appended with `record_action()`, inside the caller's transaction when it has
one. `verify_chain()` recomputes the chain and names the first row that does not fit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

from syncd.db.pool import Connection, Database
from syncd.db.queries import get as sql

Outcome = Literal["ok", "failed", "refused", "skipped"]
GENESIS = bytes(32)


@dataclasses.dataclass(frozen=True)
class Action:
    """One row of the action log."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    provider: str | None
    outcome: str
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ChainCheck:
    """The result of `verify_chain()`: how many rows were checked and the first broken one."""

    rows: int
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when every row fits the chain."""
        return self.broken_seq is None


async def record_action(target: Database | Connection, *, actor: str, action: str, subject: str,
                        outcome: Outcome, provider: str | None = None,
                        detail: dict[str, Any] | None = None) -> int:
    """Append an action (in `target`'s transaction if it is a connection); return its seq.

    `detail` must carry no secret: it is kept forever and shown to operators.
    """
    args = (actor, action, subject, provider, outcome, detail or {})
    if isinstance(target, Database):
        return int(await target.fetchval("action_append", *args))
    return int(await target.fetchval(sql("action_append"), *args))


async def actions_for(db: Database, subject: str, limit: int = 20) -> list[Action]:
    """The latest actions on `subject`, newest first."""
    rows = await db.fetch("actions_for_subject", subject, limit)
    return [Action(r["seq"], r["at"], r["actor"], r["action"], r["subject"], r["provider"],
                   r["outcome"], dict(r["detail"])) for r in rows]


async def verify_chain(db: Database) -> ChainCheck:
    """Recompute the hash chain; report the first row whose hash, link or sequence is wrong."""
    rows = await db.fetch("action_log_verify")
    for row in rows:
        seq = int(row["seq"])
        expected_seq = 1 if row["prior_seq"] is None else int(row["prior_seq"]) + 1
        if seq != expected_seq:
            return ChainCheck(len(rows), expected_seq, f"row {expected_seq} is missing")
        prior = GENESIS if row["prior_hash"] is None else bytes(row["prior_hash"])
        if bytes(row["prev_hash"]) != prior:
            return ChainCheck(len(rows), seq, "its prev_hash is not the previous row's hash")
        if bytes(row["computed"]) != bytes(row["hash"]):
            return ChainCheck(len(rows), seq, "its content does not match its hash (edited)")
    return ChainCheck(len(rows))


async def enqueue_alert(target: Database | Connection, *, event_id: str, type: str,
                        payload: dict[str, Any]) -> bool:
    """Queue an alert in the outbox (in `target`'s transaction); False if `event_id` was queued.

    `event_id` becomes the `webhook-id`: make it stable per (subject, transition).
    """
    if isinstance(target, Database):
        value = await target.fetchval("outbox_enqueue", event_id, type, payload)
    else:
        value = await target.fetchval(sql("outbox_enqueue"), event_id, type, payload)
    return value is not None

"""Typed fronts for the drift case queries (`sql/queries/reconcile.sql`, `drift_*`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

from syncd.db.actions import record_action
from syncd.db.pool import ADVISORY_NAMESPACE, Database, translate
from syncd.db.queries import get as sql

STAGE_COLUMNS = ("kind", "subject", "provider", "severity", "expected", "actual", "detail", "plan",
                 "opens")


@dataclasses.dataclass(frozen=True)
class Merge:
    """What one merge of findings into the cases changed."""

    opened: int = 0
    updated: int = 0
    resolved: int = 0
    alerts: int = 0
    escalated: int = 0  # open cases whose severity rose past what was announced
    reminded: int = 0  # open cases announced again after reconcile.renotify_hours

    @property
    def written(self) -> int:
        """Case rows written (alerts not counted)."""
        return self.opened + self.updated + self.resolved


@dataclasses.dataclass(frozen=True)
class Case:
    """A drift case as report.drift shows it."""

    id: int
    kind: str
    subject: str
    provider: str | None
    severity: str
    expected: str | None
    actual: str | None
    status: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None
    detail: dict[str, Any]
    plan: dict[str, Any] | None
    suppressed_until: dt.datetime | None
    suppressed_reason: str | None
    suppressed_by: str | None


async def merge(db: Database, records: Sequence[tuple[Any, ...]], kinds: Sequence[str],
                now: dt.datetime, *, seen_resolution: dt.timedelta, alert_rank: int,
                renotify: dt.timedelta = dt.timedelta(0)) -> Merge:
    """Open, refresh, resolve and announce cases from staged findings, with their alerts, in one
    transaction.

    `records` follow STAGE_COLUMNS; only open cases of `kinds` can be resolved, escalated or
    reminded (every `renotify`; zero: never). A run that finds what the previous one found
    writes nothing (last_seen_at moves only every `seen_resolution`).
    """
    async with db.transaction() as conn:
        with translate():
            # One merge at a time (the daemon's job and `syncd reconcile` may overlap).
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext('ops.drift'))",
                               ADVISORY_NAMESPACE)
            await conn.execute(sql("drift_stage"))
            await conn.execute("TRUNCATE stage_findings")
            if records:
                await conn.copy_records_to_table("stage_findings", records=records,
                                                 columns=STAGE_COLUMNS)
                await conn.execute("ANALYZE stage_findings")
            status = await conn.execute(sql("drift_refresh"), now, seen_resolution)
            opened = await conn.fetchrow(sql("drift_open"), now, alert_rank)
            resolved = await conn.fetchrow(sql("drift_resolve"), now, list(kinds))
            # After the resolve: a case that cleared in this run is not reminded of.
            announced = await conn.fetchrow(sql("drift_announce"), now, alert_rank, renotify,
                                            list(kinds))
    assert opened is not None and resolved is not None and announced is not None
    return Merge(opened=int(opened["opened"]), updated=int(status.split()[-1]),
                 resolved=int(resolved["resolved"]),
                 alerts=int(opened["alerted"]) + int(resolved["alerted"])
                 + int(announced["alerted"]),
                 escalated=int(announced["escalated"]), reminded=int(announced["reminded"]))


def _case(row: Any) -> Case:
    values = dict(row)
    for key in ("detail", "plan"):
        if isinstance(values[key], str):
            values[key] = json.loads(values[key])
    return Case(**values)


async def list_cases(db: Database, status: str | None, limit: int = 500) -> list[Case]:
    """Cases by status ('open' includes suppressed; None: all), newest first."""
    return [_case(r) for r in await db.fetch("drift_list", status, limit)]


async def get_case(db: Database, case_id: int) -> Case | None:
    """One case, or None."""
    row = await db.fetchrow("drift_get", case_id)
    return None if row is None else _case(row)


async def open_of_kinds(db: Database, kinds: Sequence[str]) -> list[Case]:
    """Open cases (suppressed ones included) of `kinds`, oldest first."""
    return [_case(r) for r in await db.fetch("drift_open_of_kinds", list(kinds))]


async def suppress(db: Database, case_id: int, until: dt.datetime, reason: str, by: str) -> bool:
    """Suppress an open case until `until`, in the action log as `drift.suppress` by `by`;
    False if it is not open."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(sql("drift_suppress"), case_id, until, reason, by)
        if row is None:
            return False
        await record_action(conn, actor=by, action="drift.suppress", subject=row["subject"],
                            provider=row["provider"], outcome="ok",
                            detail={"case": case_id, "kind": row["kind"],
                                    "until": until.isoformat(), "reason": reason})
    return True


async def unsuppress(db: Database, case_id: int, by: str) -> bool:
    """Lift a case's suppression, in the action log as `drift.unsuppress` by `by`; False if
    there is no such case."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(sql("drift_unsuppress"), case_id)
        if row is None:
            return False
        await record_action(conn, actor=by, action="drift.unsuppress", subject=row["subject"],
                            provider=row["provider"], outcome="ok",
                            detail={"case": case_id, "kind": row["kind"]})
    return True


async def open_counts(db: Database) -> dict[tuple[str, str], int]:
    """Open, unsuppressed cases by (kind, severity)."""
    return {(r["kind"], r["severity"]): int(r["cases"]) for r in await db.fetch("drift_open_counts")}


async def claim(db: Database, now: dt.datetime, *, run: uuid.UUID, doable: Sequence[str],
                cooldown: dt.timedelta, cap: int, lease: dt.timedelta) -> list[Case]:
    """Claim for `run` the open, unsuppressed cases with an allowed plan that is `doable`
    ('action|provider'), one per subject, whose subject no run claimed within `cooldown` and no
    live run holds: at most `cap` minus the claims live runs hold, most severe first.

    The cooldown and the cap are checked and the claims recorded in one transaction, and
    claimers take turns at it, so concurrent appliers never share a subject or pass the cap.
    """
    async with db.transaction() as conn:
        with translate():
            await conn.execute(sql("remediation_claims_lock"))
            rows = await conn.fetch(sql("remediation_claim"), now, cooldown, list(doable), cap,
                                    run, lease)
    return [Case(r["id"], r["kind"], r["subject"], r["provider"], r["severity"], r["expected"],
                 r["actual"], "open", now, now, None, dict(r["detail"]), dict(r["plan"]),
                 None, None, None) for r in rows]


async def renew_claims(db: Database, run: uuid.UUID, lease: dt.timedelta) -> None:
    """Extend the lease of `run`'s live claims to `lease` from now."""
    await db.execute("remediation_claims_renew", run, lease)


async def release_claims(db: Database, run: uuid.UUID) -> None:
    """End `run`'s claims: they stop counting against the cap and keep the cooldown."""
    await db.execute("remediation_claims_release", run)

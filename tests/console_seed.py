"""Seeded data for the operator console's tests: runs, drift, alerts, K3 quota, fleet.

Written with plain SQL into the tables syncd's own jobs write (and the action log through
`record_action`, whose trigger chains the rows), so every page has something of each kind to
show. `leak` is a text planted in every free-text column a page prints (run errors, delivery
errors, case values, action details, subjects): the secrets test plants configured secrets there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from syncd.db.actions import record_action
from syncd.db.pool import Database

# Jobs with runs, and how many finished runs each gets (K3 runs fall in this quota period).
RUNS = {"neolock-devices": 30, "biotime-terminals": 12, "k3-locks": 4, "k3-audit": 6}
K3_REQUESTS = {"k3-locks": 3, "k3-audit": 25}
# (kind, severity, status) of the seeded drift cases: several kinds, every severity and status.
CASES = [
    ("phone_not_locked", "critical", "open"),
    ("phone_not_locked", "critical", "open"),
    ("phone_not_locked", "warning", "resolved"),
    ("phone_licence_expiring", "warning", "open"),
    ("terminal_offline", "warning", "open"),
    ("terminal_offline", "warning", "suppressed"),
    ("terminal_unknown", "info", "open"),
    ("job_failing", "critical", "resolved"),
]
DELIVERIES = {"pending": 2, "delivered": 5, "dead": 3, "stopped": 1}
PHONES = {("neolock", "Enrolled"): 5, ("neolock", "Locked"): 3, ("neolock", "Completed"): 1,
          ("knoxguard", "Enrolled"): 2, ("knoxguard", "Blinked"): 1}
DEVICE_DAYS = [0, 0, 1, 3, 3, 3, 7, 12, 29]  # days ago each app device first registered


@dataclasses.dataclass(frozen=True)
class Seeded:
    """What was seeded, for the tests' expectations."""

    case_ids: list[int]
    k3_finished: list[dt.datetime]  # when each K3 run finished (the quota chart's points)
    hooks: tuple[str, ...]


async def seed(db: Database, now: dt.datetime, *, leak: str = "", hooks: tuple[str, ...] = (
        "ops-webhook", "alertmanager")) -> Seeded:
    """Fill every table the console reads; return ids and counts the tests check."""
    k3_finished = []
    async with db.transaction() as conn:
        for job, count in RUNS.items():
            for i in range(count):
                started = now - dt.timedelta(minutes=7 * (count - i))
                finished = started + dt.timedelta(seconds=1.5 + (i * 37 % 11) / 2)
                failed = job == "neolock-devices" and i % 9 == 4
                await conn.execute(
                    "INSERT INTO ops.sync_runs (job, started_at, finished_at, status, items, "
                    "requests, error, runner) VALUES ($1, $2, $3, $4, $5, $6, $7, 'seed')",
                    job, started, finished, "failed" if failed else "ok", 40 + i,
                    K3_REQUESTS.get(job, 2 + i % 3),
                    f"VendorUnavailable: neolock answered 503 {leak}" if failed else None)
                if job in K3_REQUESTS:
                    k3_finished.append(finished)
        case_ids = []
        for n, (kind, severity, status) in enumerate(CASES):
            first = now - dt.timedelta(hours=30 - n)
            case_ids.append(await conn.fetchval(
                "INSERT INTO ops.drift (kind, subject, provider, severity, expected, actual, "
                "detail, plan, status, first_seen_at, last_seen_at, resolved_at, "
                "suppressed_until, suppressed_reason, suppressed_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14) "
                "RETURNING id",
                kind, f"SUBJ-{n:03d}{leak}", "neolock" if kind.startswith("phone") else None,
                severity, "Locked", f"Enrolled {leak}".strip(), {"note": f"seeded {leak}"},
                {"action": "lock", "allowed": severity == "critical", "reason": "cap"},
                "resolved" if status == "resolved" else "open", first,
                first + dt.timedelta(hours=2) if status == "resolved" else None,
                now + dt.timedelta(days=3) if status == "suppressed" else None,
                "contract renegotiated" if status == "suppressed" else None,
                "cli:ops" if status == "suppressed" else None))
        deliveries = [state for state, n in DELIVERIES.items() for _ in range(n)]
        for i, state in enumerate(deliveries):
            case_id = case_ids[i % len(case_ids)]
            outbox_id = await conn.fetchval(
                "INSERT INTO ops.outbox (event_id, type, payload, created_at, fanned_out_at) "
                "VALUES ($1, 'drift.opened', $2, $3, $3) RETURNING id",
                f"drift-{case_id}-opened-{i}",
                {"type": "drift.opened", "case_id": case_id, "subject": f"SUBJ-{i:03d}{leak}"},
                now - dt.timedelta(hours=i))
            for hook in hooks:
                await conn.execute(
                    "INSERT INTO ops.alert_deliveries (outbox_id, hook, status, attempts, "
                    "last_status, last_error, finished_at, next_attempt_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    outbox_id, hook, state, 1 if state == "delivered" else 4,
                    200 if state == "delivered" else 503,
                    None if state == "delivered" else f"HTTP 503 from receiver {leak}",
                    None if state == "pending" else now - dt.timedelta(minutes=i),
                    now + dt.timedelta(hours=1))  # not due: the app's deliverer leaves them be
        await conn.execute(
            "INSERT INTO ops.outbox (event_id, type, payload, fanned_out_at) "
            "VALUES ($1, 'drift.opened', $2, $3)",
            f"drift-{case_ids[0]}-opened", {"type": "drift.opened", "case_id": case_ids[0]}, now)
        period = now.strftime("%Y-%m")
        await conn.execute(
            "INSERT INTO ops.api_usage (vendor, category, period, calls, quota, reserve, "
            "operator_calls) VALUES ('codelocks', 'utility', $1, $2, 6000, 1200, 4), "
            "('codelocks', 'netcode', $1, 7, 300, 60, 7)",
            period, sum(RUNS[j] * K3_REQUESTS[j] for j in K3_REQUESTS) + 4)
        for job, calls in K3_REQUESTS.items():
            await conn.execute(
                "INSERT INTO ops.api_usage_jobs (vendor, category, period, job, calls) "
                "VALUES ('codelocks', 'utility', $1, $2, $3)", period, job, RUNS[job] * calls)
            await conn.execute(
                "INSERT INTO ops.quota_plan (vendor, job, interval_seconds, next_due_at, "
                "last_run_at, last_cost) VALUES ('codelocks', $1, 3600, $2, $3, $4)",
                job, now + dt.timedelta(minutes=40), now - dt.timedelta(minutes=20), calls)
        n = 0
        for (provider, state), count in PHONES.items():
            for _ in range(count):
                n += 1
                await conn.execute(
                    "INSERT INTO vendor.phones (provider, device_uid, vendor_state, raw, "
                    "first_seen_at, last_seen_at, last_changed_at) "
                    "VALUES ($1, $2, $3, '{}', $4, $4, $4)", provider, f"DEV{n:05d}", state, now)
        terminals = [("TERM-ON", 1, now), ("TERM-OFF", 0, now - dt.timedelta(days=2)),
                     ("TERM-STRANGER", 1, now)]
        for i, (sn, online, activity) in enumerate(terminals):
            await conn.execute(
                "INSERT INTO vendor.terminals (sn, terminal_id, alias, state, last_activity, "
                "raw, first_seen_at, last_seen_at, last_changed_at) "
                "VALUES ($1, $2, $1, $3, $4, '{}', $5, $5, $5)", sn, i + 1, online, activity, now)
        await conn.executemany("INSERT INTO local.terminals (sn, alias) VALUES ($1, $1)",
                               [("TERM-ON",), ("TERM-OFF",), ("TERM-LOST",)])
        for i, days in enumerate(DEVICE_DAYS):
            await conn.execute(
                "INSERT INTO vendor.app_devices (mac_address, device_os, device_version, "
                "device_type, app_version, app_name, first_seen_at, last_seen_at) "
                "VALUES ($1, 'Android', '14', 'phone', '2.1.0', 'Shop', $2, $2)",
                f"AABBCCDDEE{i:02X}", now - dt.timedelta(days=days, minutes=5))
        for i in range(3):
            await conn.execute(
                "INSERT INTO ops.inbox (source, dedupe_key, received_at, body, next_attempt_at) "
                "VALUES ('neolock', $1, $2, $3, $4)", f"seed-{i}",
                now - dt.timedelta(minutes=4 - i), {"seed": i},
                now + dt.timedelta(hours=1))  # not due: the app's inbox worker leaves them be
        await conn.execute(
            "INSERT INTO ops.subscriptions (provider, public_url, secret_sha256, secret_source) "
            "VALUES ('neolock', 'https://syncd.example.com/hooks/neolock/', 'x', 'generated')")
    for case_id, (kind, _severity, _status) in zip(case_ids, CASES, strict=True):
        if kind == "phone_not_locked":
            subject = f"SUBJ-{case_ids.index(case_id):03d}{leak}"
            await record_action(db, actor="reconcile", action="phone.lock", subject=subject,
                                provider="neolock", outcome="ok",
                                detail={"case_id": case_id, "message": f"Payment overdue {leak}"})
    return Seeded(case_ids, sorted(k3_finished), hooks)

"""The report.* views keep the columns DESIGN.md promises and the README documents."""

from __future__ import annotations

import re
from pathlib import Path

from syncd.db.pool import Database

# DESIGN.md's SQL contract, for the views that exist so far ("at least these columns").
CONTRACT = {
    "phones": "provider, device_uid, imei, imei2, vendor_state, console_state, license_expiry, "
              "desired_state, in_drift, last_seen_at",
    "terminals": "sn, alias, area_name, ip_address, state, online, last_activity, expected, "
                 "last_seen_at",
    "sync_runs": "job, started_at, finished_at, status, items, requests, error",
    "events": "id, source, received_at, event_type, subject, status",
    "k3_locks": "lock_id, lock_name, battery_status, battery_updated_at, firmware_version, "
                "last_audit_at",
    "k3_audit": "lock_id, audit_entry_id, entered_at, entry_type, entry_text",
    "k3_clients": "lock_id, email, status, access_type, expected",
    "api_usage": "vendor, category, period, calls, quota",
    "netcodes": "lock_id, start, duration_id, expires_at, issued_at, issued_by",
    "drift": "id, kind, subject, expected, actual, severity, status, first_seen_at, last_seen_at, "
             "resolved_at",
}


async def view_columns(db: Database) -> dict[str, set[str]]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                                "WHERE table_schema = 'report'")
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


async def test_views_have_the_contracted_columns(db: Database) -> None:
    """Every contracted column exists (columns may be added, never renamed or removed)."""
    found = await view_columns(db)
    for view, columns in CONTRACT.items():
        missing = {c.strip() for c in columns.split(",")} - found.get(view, set())
        assert not missing, f"report.{view} lacks {missing}"


async def test_readme_documents_real_view_columns(db: Database) -> None:
    """Each `report.x` row of the README's table names only columns the view really has."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = re.findall(r"^\| `report\.(\w+)` \| ([^|]+) \|$", readme, flags=re.MULTILINE)
    assert len(rows) >= 4
    found = await view_columns(db)
    for view, columns in rows:
        listed = {c.strip() for c in columns.replace("(at least)", "").split(",")}
        assert listed <= found.get(view, set()), f"README lists {listed - found.get(view, set())}"

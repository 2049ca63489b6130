"""The report.* views keep the columns DESIGN.md promises, each says what it means (COMMENT ON),
and the README's view reference is generated from those comments."""

from __future__ import annotations

import os
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
    "app_devices": "mac_address, device_os, device_version, device_type, app_version, app_name, "
                   "status, ban_status, updated_at",
    "app_device_history": "mac_address, changed_at, change, app_version, previous_app_version, "
                          "app_version_changed, first_seen_at, last_seen_at",
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


BEGIN = "<!-- report-views: generated from the views' COMMENT ON by tests/test_report_contract.py -->"
END = "<!-- report-views: end -->"
README = Path(__file__).parent.parent / "README.md"


async def view_reference(db: Database) -> tuple[str, list[str]]:
    """The README's view reference rendered from the database's comments, and every view or
    column that has no comment."""
    async with db.connection() as conn:
        rows = await conn.fetch("""
            SELECT c.relname AS view, obj_description(c.oid, 'pg_class') AS about,
                   a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
                   col_description(c.oid, a.attnum) AS meaning
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'report'
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE c.relkind = 'v'
            ORDER BY c.relname, a.attnum""")
    lines: list[str] = []
    missing: list[str] = []
    current = None
    for row in rows:
        if row["view"] != current:
            current = row["view"]
            if row["about"] is None:
                missing.append(f"report.{current}")
            lines += ["", f"#### `report.{current}`", "", row["about"] or "", "",
                      "| column | type | meaning |", "|---|---|---|"]
        if row["meaning"] is None:
            missing.append(f"report.{current}.{row['column']}")
        meaning = (row["meaning"] or "").replace("|", "\\|")
        lines.append(f"| `{row['column']}` | {row['type']} | {meaning} |")
    return "\n".join(lines[1:]), missing


async def test_every_report_view_and_column_has_a_comment(db: Database) -> None:
    """Each report.* view and each of its columns carries a COMMENT ON saying what it means."""
    _, missing = await view_reference(db)
    assert missing == [], f"no COMMENT ON for: {', '.join(missing)}"


async def test_readme_view_reference_is_generated_from_the_comments(db: Database) -> None:
    """README's view reference is exactly what the views' comments render to (columns, types and
    meanings), so the analyst's documentation cannot drift from the database. With
    UPDATE_README=1 the test rewrites the README's block instead (then review the diff)."""
    rendered, _ = await view_reference(db)
    text = README.read_text()
    assert BEGIN in text and END in text, "README lacks the report-views markers"
    head, rest = text.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    wanted = f"\n{rendered}\n"
    if os.environ.get("UPDATE_README") == "1":
        README.write_text(head + BEGIN + wanted + END + tail)
        return
    assert current == wanted, ("README's view reference differs from the views' comments: "
                               "run UPDATE_README=1 pytest tests/test_report_contract.py")

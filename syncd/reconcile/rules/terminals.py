"""Pure rules for BioTime attendance terminals: which are online, and drift.

`is_online` (BioTime's own notion, kept beside its models and used by the pull job too) is mirrored
by the SQL function `vendor.terminal_online` (migration 0003), which the
`report.terminals` view evaluates against `now()` so that "online" stays true over time; a test
checks that both give the same answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from syncd.reconcile.findings import Finding, Thresholds, iso
from syncd.vendors.biotime.models import is_online

TERMINAL_KINDS = frozenset({"terminal_missing", "terminal_unknown", "terminal_offline",
                            "terminal_differs"})


@dataclasses.dataclass(frozen=True)
class TerminalRow:
    """A terminal the business expects and/or the server lists (None where a side is silent)."""

    sn: str
    expected: bool
    listed: bool
    terminal_id: int | None = None
    alias: str | None = None
    area_code: str | None = None
    expected_alias: str | None = None
    expected_area_code: str | None = None
    state: int | None = None
    last_activity: dt.datetime | None = None
    first_seen_at: dt.datetime | None = None


def _label(alias: str | None, area: str | None) -> str:
    return f"alias={alias if alias is not None else '-'}; area={area if area is not None else '-'}"


def terminal_findings(row: TerminalRow, now: dt.datetime, th: Thresholds) -> list[Finding]:
    """Missing, unknown, offline longer than the threshold, alias/area differing from local."""
    if row.expected and not row.listed:
        return [Finding("terminal_missing", row.sn, "warning", "listed by BioTime", "not listed")]
    if row.listed and not row.expected:
        return [Finding("terminal_unknown", row.sn, "info", "a local.terminals record",
                        "no record", {"alias": row.alias, "terminal_id": row.terminal_id})]
    if not row.listed:
        return []
    found: list[Finding] = []
    if not is_online(row.state, row.last_activity, now, th.online_window):
        since = row.last_activity or row.first_seen_at
        if since is None or now - since > th.terminal_offline:
            found.append(Finding("terminal_offline", row.sn, "warning", "online",
                                 f"offline since {iso(since) or 'ever'}",
                                 {"state": row.state, "last_activity": iso(row.last_activity)}))
    want_alias = row.expected_alias if row.expected_alias is not None else row.alias
    want_area = row.expected_area_code if row.expected_area_code is not None else row.area_code
    if (want_alias, want_area) != (row.alias, row.area_code):
        found.append(Finding(
            "terminal_differs", row.sn, "warning", _label(want_alias, want_area),
            _label(row.alias, row.area_code),
            {"terminal_id": row.terminal_id, "alias": want_alias, "area_code": want_area}))
    return found

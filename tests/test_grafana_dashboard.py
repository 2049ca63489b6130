"""deploy/grafana/syncd.json imports as is: data sources come from its `__inputs`, every panel
has a data source and targets, its PromQL passes promtool, and its report.* SQL runs with the
reporting role's grants. (Its series names are checked in test_monitoring_names.py.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from syncd.db.pool import Database
from tests.monitoring import DASHBOARD, dashboard, panels, promtool

INPUTS = {"DS_PROMETHEUS": "prometheus", "DS_SYNCD_REPORTS": "grafana-postgresql-datasource"}


def test_the_dashboard_declares_its_inputs_and_requirements_for_import() -> None:
    """The file is one JSON object with a title and uid, no database id, an `__inputs` entry for
    each `${DS_…}` it uses (and none unused), and `__requires` naming every panel type and data
    source plugin it uses."""
    board = dashboard()
    text = DASHBOARD.read_text(encoding="utf-8")
    assert board["title"] and board["uid"] and board.get("id") is None
    declared = {i["name"]: i["pluginId"] for i in board["__inputs"] if i["type"] == "datasource"}
    assert declared == INPUTS
    assert set(re.findall(r"\$\{(DS_[A-Z_]+)\}", text)) == set(INPUTS)
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    used_panels = {("panel", p["type"]) for p in panels(board)}
    assert used_panels | {("datasource", plugin) for plugin in INPUTS.values()} <= required


def test_every_panel_has_a_data_source_targets_and_a_place_on_the_grid() -> None:
    """Each panel has a unique id, a title, a description, a data source that is one of the
    inputs (its targets the same), at least one target with a unique refId and a query in that
    data source's language, and a grid position inside 24 columns that overlaps no other."""
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    for panel in panels(board):
        title = panel["title"]
        assert title and panel["description"], panel["id"]
        source = panel["datasource"]
        plugin = INPUTS[source["uid"].removeprefix("${").removesuffix("}")]
        assert source["type"] == plugin, title
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), title
        for target in targets:
            assert target["datasource"] == source, title
            if plugin == "prometheus":
                assert target["expr"].strip(), title
            else:
                assert target["rawSql"].strip() and target["format"] == "table", title


def test_the_panels_cover_what_an_operator_looks_for() -> None:
    """There are panels for job runs, failures and durations, the inbox, push intake and latency,
    the registry, vendor requests, alert deliveries, drift, the Codelocks quota, replicas and
    tasks, and two report.* tables (open drift, each job's latest run)."""
    queries = {p["title"]: " ".join(t.get("expr", "") + t.get("rawSql", "") for t in p["targets"])
               for p in panels(dashboard())}
    wanted = {
        "syncd_job_runs_total": 2, "syncd_job_run_duration_seconds": 2,
        "syncd_inbox_pending_events": 1, "syncd_inbox_oldest_pending_age_seconds": 1,
        "syncd_events_total": 1, 'route="/hooks/neolock/{secret}"': 1, "/v2/device": 2,
        "syncd_vendor_requests_total": 1, "syncd_alert_deliveries": 1, "syncd_drift_open": 1,
        "syncd_codelocks_quota_used_calls": 1, "syncd_codelocks_quota_limit_calls": 1,
        "syncd_replicas": 1, "syncd_task_up": 1, "FROM report.drift": 1,
        "FROM report.sync_runs": 1,
    }
    for needle, panel_count in wanted.items():
        assert sum(needle in q for q in queries.values()) >= panel_count, needle


def test_every_panel_query_passes_promtool(tmp_path: Path) -> None:
    """Each Prometheus target's PromQL, with Grafana's interval variables filled in, is accepted
    by `promtool check rules` as a recording rule."""
    exprs = [t["expr"] for p in panels(dashboard()) for t in p["targets"] if "expr" in t]
    filled = [re.sub(r"\$__(rate_)?interval", "5m", expr) for expr in exprs]
    assert not [e for e in filled if "$" in e], "a Grafana variable promtool would not know"
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": expr} for n, expr in enumerate(filled)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def _sql_panel(title: str) -> str:
    found = [p for p in panels(dashboard()) if p["title"] == title]
    assert len(found) == 1, title
    sql: str = found[0]["targets"][0]["rawSql"]
    return sql


async def _as_reporting_role(db: Database, sql: str) -> list[dict[str, Any]]:
    """Rows of `sql` run with only the syncd_report role's grants (as a reader login has)."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE syncd_report")
        return [dict(row) for row in await conn.fetch(sql)]


async def test_the_open_drift_table_lists_open_cases_most_severe_first(db: Database) -> None:
    """The "Open drift cases" SQL, run as syncd_report, lists open cases critical first, then by
    age; resolved and suppressed cases are left out."""
    async with db.connection() as conn:
        await conn.execute("""
            INSERT INTO ops.drift (kind, subject, severity, status, first_seen_at, last_seen_at,
                                   resolved_at, suppressed_until)
            VALUES ('terminal_missing', 'SN1', 'warning', 'open', now() - interval '3 h', now(),
                    NULL, NULL),
                   ('phone_locked_out', 'U1', 'critical', 'open', now() - interval '1 h', now(),
                    NULL, NULL),
                   ('phone_locked_out', 'U2', 'critical', 'resolved', now() - interval '5 h',
                    now(), now(), NULL),
                   ('phone_not_locked', 'U3', 'warning', 'open', now() - interval '9 h', now(),
                    NULL, now() + interval '1 day')""")
    rows = await _as_reporting_role(db, _sql_panel("Open drift cases"))
    assert [(r["kind"], r["subject"], r["severity"]) for r in rows] == [
        ("phone_locked_out", "U1", "critical"), ("terminal_missing", "SN1", "warning")]


async def test_the_latest_runs_table_shows_each_jobs_newest_run(db: Database) -> None:
    """The "Latest run of each job" SQL, run as syncd_report, has one row per job: its newest."""
    async with db.connection() as conn:
        await conn.execute("""
            INSERT INTO ops.sync_runs (job, status, runner, started_at, finished_at, error)
            VALUES ('k3-locks', 'failed', 't', now() - interval '2 h', now(), 'HTTP 503'),
                   ('k3-locks', 'ok', 't', now() - interval '1 h', now(), NULL),
                   ('biotime-terminals', 'failed', 't', now() - interval '1 h', now(), 'boom')""")
    rows = await _as_reporting_role(db, _sql_panel("Latest run of each job"))
    assert [(r["job"], r["status"], r["error"]) for r in rows] == [
        ("biotime-terminals", "failed", "boom"), ("k3-locks", "ok", None)]

"""Replicas in ops.replicas: registering, beating, stopping, closing a silent replica's runs, and
what status makes of them (down, overdue jobs); real PostgreSQL, in one process."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from syncd.db import codelocks, ops
from syncd.db.pool import Database
from syncd.jobs.heartbeat import Heartbeat, identity
from syncd.jobs.housekeeping import HousekeepingJob
from syncd.jobs.runner import JobRunner
from syncd.jobs.status import collect_status, next_run
from syncd.settings.core import Settings
from syncd.settings.service import StatusSettings
from syncd.supervisor import Supervisor

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(seconds=60)


def fast(make_settings: Callable[..., Settings]) -> Settings:
    """Settings with a heartbeat quick enough for a test."""
    return make_settings(heartbeat={"interval_seconds": 0.1, "abandon_after_seconds": 0.4})


def beating(db: Database, settings: Settings, kind: str = "daemon") -> Heartbeat:
    return Heartbeat(db, identity(kind, "run" if kind == "daemon" else "sync"), settings,
                     Supervisor())


async def run_rows(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT job, status, error FROM ops.sync_runs ORDER BY id")
    return {r["job"]: (r["status"], r["error"]) for r in rows}


async def test_a_silent_replicas_runs_are_abandoned_by_a_live_one(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """Once a replica has not beaten for abandon_after_seconds, the next beat of a live replica
    fails its running runs as abandoned; the live replica's own runs and runs recorded without a
    replica are left alone."""
    settings = fast(make_settings)
    dead, live = beating(db, settings, "once"), beating(db, settings)
    await dead.register()
    await live.register()
    await ops.start_run(db, "k3-clients", dead.me.runner, dead.me.id)
    await ops.start_run(db, "reconcile", live.me.runner, live.me.id)
    await ops.start_run(db, "housekeeping", "old-syncd:7")  # a runner without a replica
    deadline = time.monotonic() + 10
    closed = await live.beat_once()
    while not closed:  # `dead` never beats again; `live` keeps beating
        assert time.monotonic() < deadline, "the silent replica's run was never abandoned"
        await asyncio.sleep(0.05)
        closed = await live.beat_once()
    assert [(run.job, run.runner) for run in closed] == [("k3-clients", dead.me.runner)]
    assert await run_rows(db) == {
        "k3-clients": ("failed", f"abandoned: its replica ({dead.me.runner}) stopped beating"),
        "reconcile": ("running", None), "housekeeping": ("running", None)}
    assert await live.beat_once() == []  # closed once, by one replica


async def test_a_graceful_stop_marks_the_replica_stopped_and_closes_its_runs(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """stop() records stopped_at (visible in report.replicas) and fails the runs the replica
    leaves running, e.g. those cancelled at the drain deadline."""
    heartbeat = beating(db, fast(make_settings))
    await heartbeat.register()
    await ops.start_run(db, "neolock-devices", heartbeat.me.runner, heartbeat.me.id)
    await heartbeat.stop()
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT kind, command, host, pid, version, stopped_at "
                                  "FROM report.replicas WHERE id = $1", heartbeat.me.id)
    assert row is not None and row["stopped_at"] is not None
    assert (row["kind"], row["command"], row["pid"]) == ("daemon", "run", heartbeat.me.pid)
    assert await run_rows(db) == {
        "neolock-devices": ("failed", "abandoned: the replica stopped before the run finished")}


async def test_status_is_down_without_a_live_daemon_unless_none_is_expected(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A registered daemon makes status ok and is listed as up; once it stopped, status is down
    and says which daemon beat last; with expect_daemon = false the same state is ok."""
    heartbeat = beating(db, fast(make_settings))
    await heartbeat.register()
    body = await collect_status(db, {})
    assert body["health"] == "ok", body["problems"]
    assert [(r["id"], r["kind"], r["state"]) for r in body["replicas"]] == [
        (str(heartbeat.me.id), "daemon", "up")]
    await heartbeat.stop()
    body = await collect_status(db, {})
    assert body["health"] == "down"
    assert body["problems"][0].startswith("no daemon replica (`syncd run`) beat within 60s: the "
                                          f"last, {heartbeat.me.runner}, stopped at ")
    assert body["replicas"][0]["state"] == "stopped"
    relaxed = await collect_status(db, {}, policy=StatusSettings(expect_daemon=False))
    assert relaxed["health"] == "ok"


async def test_an_overdue_job_degrades_status(db: Database) -> None:
    """A job with no start for two intervals is overdue: degraded, named with when it was due;
    before that its next run is simply in the past or future, not a problem."""
    await JobRunner(db).run(HousekeepingJob())
    started = (await ops.latest_runs(db))["housekeeping"]["started_at"]
    policy = StatusSettings(expect_daemon=False)
    early = await collect_status(db, {"housekeeping": 60.0}, policy=policy,
                                 now=started + 1.5 * MINUTE)
    assert early["health"] == "ok" and early["overdue_jobs"] == []
    assert early["jobs"][0]["next_run_at"] == started + MINUTE  # late, not yet overdue
    late = await collect_status(db, {"housekeeping": 60.0}, policy=policy,
                                now=started + 2.5 * MINUTE)
    assert late["health"] == "degraded" and late["overdue_jobs"] == ["housekeeping"]
    assert late["jobs"][0]["overdue_since"] == started + MINUTE
    assert late["problems"] == [
        f"job housekeeping overdue since {(started + MINUTE).isoformat(timespec='seconds')}"]


async def test_a_planned_k3_job_is_overdue_one_tick_after_its_planned_run(db: Database) -> None:
    """A Codelocks job is due at the planner's next run, which may be days after its last start,
    and overdue one interval (its tick) after that, not two intervals after its last start."""
    planned = T0 + dt.timedelta(days=2)
    await codelocks.plan_ran(db, "codelocks", "k3-locks", 172800.0, planned, T0, 3, None)
    policy = StatusSettings(expect_daemon=False)
    schedule = {"k3-locks": 900.0}
    quiet = await collect_status(db, schedule, policy=policy, now=planned + 10 * MINUTE)
    assert quiet["overdue_jobs"] == [] and quiet["jobs"][0]["next_run_at"] == planned
    late = await collect_status(db, schedule, policy=policy, now=planned + 16 * MINUTE)
    assert late["overdue_jobs"] == ["k3-locks"] and late["jobs"][0]["overdue_since"] == planned


def test_next_run_counts_from_the_later_of_the_last_start_and_the_daemons_start() -> None:
    """A daemon that started after the last run gets one interval to run it; a job that never ran
    with no live daemon has no estimate; a disabled job none at all."""
    assert next_run(60.0, T0, None, None, T0 + 3 * MINUTE) == (T0 + MINUTE, T0 + MINUTE)
    since = T0 + 10 * MINUTE
    assert next_run(60.0, T0, None, since, since + MINUTE) == (since + MINUTE, None)
    assert next_run(60.0, None, None, since, since + 3 * MINUTE) == (since + MINUTE, since + MINUTE)
    assert next_run(60.0, None, None, None, T0) == (None, None)
    assert next_run(None, T0, None, since, T0 + 9 * MINUTE) == (None, None)
    # A planned run that already started counts as a start: the plan is renewed when it ends;
    # until then the planned time stays the next run shown (as `syncd quota` shows it).
    assert next_run(60.0, T0 + MINUTE, T0, None, T0 + 2 * MINUTE) == (T0, None)
    assert next_run(60.0, T0 + MINUTE, T0, None, T0 + 4 * MINUTE) == (T0, T0 + 2 * MINUTE)
    # A daemon that started after the planned run: still shown at the plan, overdue one tick
    # after the daemon's start, not after the plan.
    assert next_run(60.0, None, T0, since, since + 0.5 * MINUTE) == (T0, None)
    assert next_run(60.0, None, T0, since, since + 2 * MINUTE) == (T0, since)


async def test_status_lists_a_one_shot_replica_while_it_runs_not_after_it_ended(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """A `sync --once` process is listed (kind once) while it beats, and not once it ended
    normally: a cron job every minute would otherwise fill the list."""
    once = beating(db, fast(make_settings), "once")
    await once.register()
    policy = StatusSettings(expect_daemon=False)
    listed = (await collect_status(db, {}, policy=policy))["replicas"]
    assert [(r["kind"], r["command"], r["state"]) for r in listed] == [("once", "sync", "up")]
    await once.stop()
    assert (await collect_status(db, {}, policy=policy))["replicas"] == []

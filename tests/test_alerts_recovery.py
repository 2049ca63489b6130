"""`syncd alerts list|redeliver|ack|test` against the alert receiver simulator and a real PostgreSQL:
a hook down long enough dead-letters its alerts, `status` names them per hook until they are
redelivered (same webhook-id, a fresh retry window) or acknowledged, and a test event is signed
as real alerts are."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from syncd.alerts.deliverer import Deliverer
from syncd.cli.main import main
from syncd.db.actions import enqueue_alert, verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators.alert_receiver import AlertReceiver, create_app
from syncd.devtools.simulators.common import serve
from syncd.jobs.status import collect_status
from syncd.metrics import Metrics
from syncd.settings.drift import AlertSettings
from syncd.settings.service import StatusSettings
from tests.conftest import free_port
from tests.waiting import wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NO_DAEMON = StatusSettings(expect_daemon=False)


def conf(hooks: dict[str, str]) -> AlertSettings:
    """Alert settings with these hooks (name -> URL) and short retries."""
    return AlertSettings(hooks=[{"name": name, "url": url, "secret": SECRET}
                                for name, url in hooks.items()],
                         retry_base_seconds=0.01, retry_max_seconds=0.05, poll_seconds=0.01)


def config(tmp_path: Path, dsn: str, hooks: dict[str, str]) -> str:
    """A config file for the test database with these hooks."""
    path = tmp_path / "syncd.toml"
    text = f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{dsn}"\n'
    for name, url in hooks.items():
        text += f'[[alerts.hooks]]\nname = "{name}"\nurl = "{url}"\nsecret = "{SECRET}"\n'
    path.write_text(text)
    return str(path)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `syncd ARGV` in a thread (it runs its own event loop); exit code, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def states(db: Database) -> dict[int, tuple[str, str]]:
    """Each delivery's (hook, state), by id."""
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT id, hook, ops.delivery_state(status, acked_at) AS state "
                                "FROM ops.alert_deliveries ORDER BY id")
    return {r["id"]: (r["hook"], r["state"]) for r in rows}


async def dead_letter(db: Database, deliverer: Deliverer, count: int) -> None:
    """Let the deliverer fail every delivery once, then make each alert older than
    alerts.max_age_hours with its retry due: the next failure dead-letters it."""
    await wait_for(lambda: _tried(db, deliverer, count), what="a first failed attempt each")
    async with db.connection() as conn:
        await conn.execute("UPDATE ops.outbox SET created_at = now() - interval '25 hours'")
        await conn.execute("UPDATE ops.alert_deliveries SET next_attempt_at = now()")
    await wait_for(lambda: _all_dead(db, deliverer, count), what="every delivery to die")


async def _tried(db: Database, deliverer: Deliverer, count: int) -> bool:
    await deliverer.run_once()
    async with db.connection() as conn:
        return bool(await conn.fetchval("SELECT count(*) = $1 FROM ops.alert_deliveries "
                                        "WHERE attempts >= 1 AND last_error IS NOT NULL", count))


async def _all_dead(db: Database, deliverer: Deliverer, count: int) -> bool:
    await deliverer.run_once()
    return [s for _, s in (await states(db)).values()] == ["dead"] * count


async def queue(db: Database, count: int) -> list[str]:
    """Queue `count` alerts as reconcile does; their webhook-ids."""
    ids = [f"drift-{n}-opened" for n in range(1, count + 1)]
    for n, event_id in enumerate(ids, start=1):
        await enqueue_alert(db, event_id=event_id, type="drift.opened",
                            payload={"type": "drift.opened", "case_id": n, "subject": f"DEV{n}"})
    return ids


async def test_a_hook_down_dead_letters_its_alerts_and_redeliver_sends_them_once_it_is_back(
        db: Database, db_dsn: str, tmp_path: Path, session: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The receiver is down until its alerts are past alerts.max_age_hours: the three deliveries
    die and `status` is degraded naming `ops 3`. Once it is back, `alerts redeliver --dead`
    puts them back (one action-log row); the first POST gets a 503 and is retried, not killed
    again (the window restarts at the redelivery); all three arrive signed, with the webhook-ids
    they were queued with, once each, and `status` is ok again."""
    port = free_port()
    hooks = {"ops": f"http://127.0.0.1:{port}/hook"}
    deliverer = Deliverer(db, session, conf(hooks))
    webhook_ids = await queue(db, 3)
    await dead_letter(db, deliverer, 3)
    body = await collect_status(db, {}, policy=NO_DAEMON)
    assert body["health"] == "degraded"
    assert body["problems"] == ["alert deliveries dead (gave up; `syncd alerts redeliver --dead` "
                                "or `syncd alerts ack`): ops 3"]
    assert body["alert_deliveries"] == [{"hook": "ops", "status": "dead", "count": 3}]
    cfg = config(tmp_path, db_dsn, hooks)
    code, out, _ = await cli(capsys, "alerts", "list", "--status", "dead", "--config", cfg)
    assert code == 0 and out.splitlines()[-1] == "3 deliveries"
    assert all(w in out for w in webhook_ids)
    state = AlertReceiver(SECRET, answers=[503])
    async with serve(create_app(state), port=port):
        code, out, _ = await cli(capsys, "alerts", "redeliver", "--dead", "--hook", "ops",
                                 "--config", cfg)
        assert code == 0 and out.startswith("redelivered 3 deliveries (ops 3); action log #")
        await deliverer.run_once()
        assert state.refused == 1
        assert sorted(s for _, s in (await states(db)).values()) == [
            "delivered", "delivered", "pending"]  # retried: a fresh window, not dead at once
        await wait_for(lambda: _delivered(deliverer, state, 3), what="all three delivered")
    assert sorted(str(i) for i in state.ids()) == webhook_ids  # the same webhook-ids, each once
    assert all(r.verified for r in state.received)
    assert [s for _, s in (await states(db)).values()] == ["delivered"] * 3
    body = await collect_status(db, {}, policy=NO_DAEMON)
    assert body["health"] == "ok" and body["problems"] == []
    async with db.connection() as conn:
        actions = await conn.fetch("SELECT actor, action, subject, detail FROM ops.remediation_log")
        redeliveries = await conn.fetchval("SELECT sum(redeliveries) FROM report.alert_deliveries")
    assert [(a["action"], a["subject"]) for a in actions] == [("alerts.redeliver", "hook:ops")]
    assert actions[0]["actor"].startswith("cli")
    assert dict(actions[0]["detail"])["redelivered"] == 3 and redeliveries == 3
    assert (await verify_chain(db)).ok


async def _delivered(deliverer: Deliverer, state: AlertReceiver, count: int) -> bool:
    await deliverer.run_once()
    return len(state.received) >= count


async def test_an_acknowledged_dead_delivery_no_longer_counts_as_a_problem(
        db: Database, db_dsn: str, tmp_path: Path, session: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Dead deliveries to two hooks: acknowledging one hook's (with a reason) leaves `status`
    naming only the other; the acknowledged one is listed with who and why, counted apart in
    the gauge, refused a second acknowledgement, and can still be redelivered by id."""
    hooks = {"ops": f"http://127.0.0.1:{free_port()}/a",
             "pager": f"http://127.0.0.1:{free_port()}/b"}
    metrics = Metrics()
    deliverer = Deliverer(db, session, conf(hooks), metrics=metrics)
    await queue(db, 1)
    await dead_letter(db, deliverer, 2)
    ops_id = next(i for i, (hook, _) in (await states(db)).items() if hook == "ops")
    cfg = config(tmp_path, db_dsn, hooks)
    code, out, _ = await cli(capsys, "alerts", "ack", str(ops_id), "--reason",
                             "told the on-call by phone", "--config", cfg)
    assert code == 0 and out.startswith("acknowledged 1 dead delivery (ops 1); action log #")
    body = await collect_status(db, {}, policy=NO_DAEMON)
    assert body["problems"] == ["alert deliveries dead (gave up; `syncd alerts redeliver --dead` "
                                "or `syncd alerts ack`): pager 1"]
    assert body["alert_deliveries"] == [{"hook": "ops", "status": "acknowledged", "count": 1},
                                        {"hook": "pager", "status": "dead", "count": 1}]
    await deliverer.refresh_gauges()
    text = metrics.render().decode()
    assert 'syncd_alert_deliveries{hook="ops",status="acknowledged"} 1.0' in text
    assert 'syncd_alert_deliveries{hook="pager",status="dead"} 1.0' in text
    code, out, _ = await cli(capsys, "alerts", "list", "--status", "acknowledged", "--json",
                             "--config", cfg)
    (listed,) = json.loads(out)
    assert (listed["id"], listed["acked_by"][:3], listed["ack_reason"]) == (
        ops_id, "cli", "told the on-call by phone")
    code, out, _ = await cli(capsys, "alerts", "ack", str(ops_id), "--reason", "again",
                             "--config", cfg)
    assert code == 1 and f"left alone: {ops_id} is acknowledged" in out
    code, out, _ = await cli(capsys, "alerts", "ack", "--dead", "--hook", "pager", "--reason",
                             "hook retired", "--config", cfg)
    assert code == 0 and out.startswith("acknowledged 1 dead delivery (pager 1)")
    body = await collect_status(db, {}, policy=NO_DAEMON)
    assert body["health"] == "ok"
    code, out, _ = await cli(capsys, "alerts", "redeliver", str(ops_id), "--config", cfg)
    assert code == 0 and out.startswith("redelivered 1 delivery (ops 1)")
    assert (await states(db))[ops_id] == ("ops", "pending")
    with pytest.raises(SystemExit) as no_reason:  # argparse: --reason is required
        await asyncio.to_thread(main, ["alerts", "ack", str(ops_id), "--config", cfg])
    assert no_reason.value.code == 2
    async with db.connection() as conn:
        logged = [r["action"] for r in await conn.fetch(
            "SELECT action FROM ops.remediation_log ORDER BY seq")]
    assert logged == ["alerts.ack", "alerts.ack", "alerts.redeliver"]


async def test_alerts_test_sends_a_signed_test_event_and_prints_the_answer(
        db: Database, db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`alerts test ops` posts a `syncd.test` event signed as real alerts are (the receiver
    verifies it) and prints the receiver's status; a refusal prints its status and the start of
    its answer and exits 1; an unknown hook exits 2 naming the configured ones. Both sends are
    in the action log."""
    state = AlertReceiver(SECRET)
    async with serve(create_app(state)) as running:
        cfg = config(tmp_path, db_dsn, {"ops": running.url + "/hook"})
        code, out, _ = await cli(capsys, "alerts", "test", "ops", "--config", cfg)
        assert code == 0 and "HTTP 204 (accepted)" in out
        (got,) = state.received
        assert got.verified and got.body["type"] == "syncd.test"
        assert got.webhook_id is not None and got.webhook_id.startswith("test-")
        assert got.webhook_id in out
        state.answers, state.reply = [503], "maintenance window until 14:00"
        code, out, _ = await cli(capsys, "alerts", "test", "ops", "--config", cfg)
        assert code == 1 and "HTTP 503 (refused)" in out
        assert "answer: maintenance window until 14:00" in out
        code, _, err = await cli(capsys, "alerts", "test", "opz", "--config", cfg)
        assert code == 2 and "configured: ops" in err
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT action, subject, outcome, detail FROM ops.remediation_log "
                                "ORDER BY seq")
    assert [(r["action"], r["subject"], r["outcome"], dict(r["detail"])["status"])
            for r in rows] == [("alerts.test", "hook:ops", "ok", 204),
                               ("alerts.test", "hook:ops", "failed", 503)]
    assert dict(rows[0]["detail"])["webhook_id"] == got.webhook_id

"""`syncd events list|show|replay` against the NeoLock simulator and a real PostgreSQL: failed pushes
replayed are re-read once, replays are idempotent and logged, secrets never shown, quarantined
pushes shown but not replayed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from syncd.cli.main import main
from syncd.db import ops
from syncd.db.actions import verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.inbox.worker import MAX_ATTEMPTS, InboxWorker
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.vendors.neolock.client import NeoLockClient
from tests.waiting import wait_for

DEVICE_ROUTE = "/api/clients/devices/{deviceUid}"
SECRET = "replay-hook-secret-0123456789abcdef"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 8 devices."""
    state = neosim.NeoLockSim(seed=11, devices=8)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


def config(tmp_path: Path, dsn: str, state: neosim.NeoLockSim, url: str) -> str:
    """A config file for the test database and the simulator (the hook secret configured)."""
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{dsn}"\n'
                    f'[neolock]\nbase_url = "{url}"\nlogin = "{state.login}"\n'
                    f'password = "{state.password}"\nwebhook_secret = "{SECRET}"\n')
    return str(path)


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `syncd ARGV` in a thread (it runs its own event loop); its exit code, stdout, stderr
    (what the test itself printed before is dropped)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def counts(db: Database) -> dict[str, int]:
    """Inbox events by status."""
    return await ops.inbox_counts(db)


async def test_a_batch_of_failed_pushes_replayed_is_processed_once(
        db: Database, db_dsn: str, tmp_path: Path, sim: tuple[neosim.NeoLockSim, Running],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Five pushes fail while NeoLock is down (every attempt used). Once it is back, a dry run
    changes nothing; `events replay --status failed` puts the five back (printed, logged, one
    action-log row); replaying again at once leaves them alone (pending); the inbox worker then
    re-reads each device exactly once and every event ends processed, replayed once."""
    state, running = sim
    uids = sorted(state.devices)[:5]
    committer = GroupCommitter(db)
    for i, uid in enumerate(uids):
        assert await committer.submit(InboxItem("neolock", f"id:e{i}", "device.locked", uid,
                                                json.dumps({"id": f"e{i}", "deviceUid": uid})))
    running.faults.set(DEVICE_ROUTE, FaultSpec(error_rate=1.0))
    async with aiohttp.ClientSession() as session:
        worker = InboxWorker(db, NeoLockClient(session, running.url, state.login, state.password,
                                               max_retries=0))

        async def all_failed() -> bool:
            await worker.process_due()
            async with db.connection() as conn:  # each retry due at once: the wait is not the point
                await conn.execute("UPDATE ops.inbox SET next_attempt_at = now() "
                                   "WHERE status = 'pending'")
            return await counts(db) == {"failed": 5}

        await wait_for(all_failed, what=f"five pushes to fail after {MAX_ATTEMPTS} attempts",
                       timeout=60)
        running.faults.clear()
        cfg = config(tmp_path, db_dsn, state, running.url)
        code, out, _ = await cli(capsys, "events", "replay", "--status", "failed", "--dry-run",
                                 "--config", cfg)
        assert code == 0 and out.startswith("dry run: would replay 5 event(s): ")
        assert await counts(db) == {"failed": 5}
        code, out, err = await cli(capsys, "events", "replay", "--status", "failed", "--since",
                                   "1h", "--config", cfg, "--log-level", "info")
        assert code == 0, err
        assert out.startswith("replayed 5 event(s) (5 failed); action log #")
        logged = [json.loads(line) for line in err.splitlines() if '"events.replayed"' in line]
        assert [(e["count"], e["by_status"]) for e in logged] == [(5, {"failed": 5})]
        assert await counts(db) == {"pending": 5}
        again, out, _ = await cli(capsys, "events", "replay", "--status", "failed", "--config", cfg)
        assert again == 0 and out == "replayed 0 events: nothing to replay\n"
        ids = [str(i) for i in await _ids(db)]
        again, out, _ = await cli(capsys, "events", "replay", *ids, "--config", cfg)
        assert again == 0 and "left alone: 5 already pending" in out
        before = running.counters[DEVICE_ROUTE].requests

        async def all_processed() -> bool:
            await worker.process_due()
            return await counts(db) == {"processed": 5}

        await wait_for(all_processed, what="the replayed pushes to be processed")
        assert await worker.process_due() == 0
    assert running.counters[DEVICE_ROUTE].requests - before == 5  # each device re-read once
    async with db.connection() as conn:
        refreshed = await conn.fetchval("SELECT count(*) FROM vendor.phones WHERE device_uid = "
                                        "ANY($1::text[])", uids)
        actions = await conn.fetch("SELECT actor, action, subject, outcome, detail "
                                   "FROM ops.remediation_log ORDER BY seq")
    assert refreshed == 5
    assert [(a["action"], a["subject"], a["outcome"]) for a in actions] == [
        ("events.replay", "inbox", "ok")]
    assert actions[0]["actor"].startswith("cli")
    detail = dict(actions[0]["detail"])
    assert detail["replayed"] == 5 and detail["by_status"] == {"failed": 5}
    assert detail["status"] == "failed" and sorted(map(str, detail["ids"])) == sorted(ids)
    assert (await verify_chain(db)).ok
    code, out, _ = await cli(capsys, "events", "list", "--status", "processed", "--json",
                             "--config", cfg)
    listed = json.loads(out)
    assert code == 0 and len(listed) == 5
    assert all(e["replays"] == 1 and e["error"] is None for e in listed)


async def _ids(db: Database) -> list[int]:
    """Every inbox event's id."""
    async with db.connection() as conn:
        return [r["id"] for r in await conn.fetch("SELECT id FROM ops.inbox ORDER BY id")]


async def test_show_masks_secrets_and_quarantined_pushes_are_shown_but_never_replayed(
        db: Database, db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`events show` prints an event's body, attempts and last error with every configured secret
    masked; a quarantined push is listed as qN and shown (secret masked, control bytes escaped)
    but `events replay qN` is refused; an unknown id and a command line naming nothing or both
    are refused with their own exit codes."""
    state = neosim.NeoLockSim(seed=1, devices=1)
    cfg = config(tmp_path, db_dsn, state, "http://127.0.0.1:9/api")
    body = {"id": "s1", "deviceUid": "DEV1", "callback": f"https://x.example/cb?s={SECRET}"}
    assert await GroupCommitter(db).submit(InboxItem("neolock", "id:s1", "device.locked", "DEV1",
                                                     json.dumps(body)))
    async with db.connection() as conn:  # as the worker leaves an event it gave up on
        event_id = await conn.fetchval(
            "UPDATE ops.inbox SET status = 'failed', attempts = 12, processed_at = now(), "
            "error = $1 RETURNING id", f"neolock: GET answered 401 for password {state.password}")
    await ops.quarantine(db, "neolock", reason="invalid JSON: Expecting value: line 1 column 1",
                         content_type="text/plain", body=f"oops {SECRET}\x00\xff".encode("latin-1"))
    code, out, _ = await cli(capsys, "events", "show", str(event_id), "--config", cfg)
    assert code == 0
    assert SECRET not in out and state.password not in out
    assert "attempts:     12" in out and "status:       failed" in out
    assert "password [REDACTED]" in out and "cb?s=[REDACTED]" in out
    assert '"deviceUid": "DEV1"' in out
    code, out, _ = await cli(capsys, "events", "list", "--status", "quarantined", "--config", cfg)
    q_id = next(line.split()[0] for line in out.splitlines() if line.strip().startswith("q"))
    assert code == 0 and "invalid JSON" in out
    code, out, _ = await cli(capsys, "events", "show", q_id, "--config", cfg)
    assert code == 0 and "not replayable" in out and SECRET not in out
    assert "oops [REDACTED]\\x00\\xff" in out
    code, _, err = await cli(capsys, "events", "replay", q_id, "--config", cfg)
    assert code == 2 and "a quarantined push cannot be replayed" in err
    code, out, _ = await cli(capsys, "events", "replay", "999999", "--config", cfg)
    assert code == 1 and "unknown: 1" in out and "replayed 0 events" in out
    code, _, err = await cli(capsys, "events", "replay", "--config", cfg)
    assert code == 2 and "give event ids, or --status" in err
    code, _, err = await cli(capsys, "events", "replay", str(event_id), "--status", "failed",
                             "--config", cfg)
    assert code == 2 and "not both" in err
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ops.remediation_log") == 0

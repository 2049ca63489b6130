"""`syncd phones delete`, `phones async ACTION … --wait` and `phones transaction`: asked where hard
to undo, dry-run sends nothing, transactions polled to their end, everything in the action log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from syncd.cli.main import main
from syncd.db.actions import verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.core import Settings
from syncd.sync.knoxguard import KnoxDevicesJob
from syncd.vendors.knoxguard import KnoxGuardClient


@pytest.fixture
def knox() -> KnoxGuardSim:
    """A Knox Guard tenant whose async requests finish 0.1 s after they are sent."""
    return KnoxGuardSim(seed=21, devices=30, transition_delay=0.05, async_delay=0.1)


@pytest.fixture
async def knox_run(knox: KnoxGuardSim) -> AsyncIterator[Running]:
    """The tenant on loopback."""
    async with serve(create_app(knox), prefix=BASE_PATH) as running:
        yield running


@pytest.fixture
def neo() -> neosim.NeoLockSim:
    """A NeoLock reseller account."""
    return neosim.NeoLockSim(seed=22, devices=10, transition_delay=0.05)


@pytest.fixture
async def neo_run(neo: neosim.NeoLockSim) -> AsyncIterator[Running]:
    """The reseller API on loopback."""
    async with serve(neosim.create_app(neo), prefix=neosim.BASE_PATH) as running:
        yield running


@pytest.fixture
async def config_file(db: Database, make_settings: Callable[..., Settings], tmp_path: Path,
                      knox: KnoxGuardSim, knox_run: Running, neo: neosim.NeoLockSim,
                      neo_run: Running) -> Path:
    """Both providers configured; the Knox tenant synced into vendor.phones."""
    async with aiohttp.ClientSession() as session:
        client = KnoxGuardClient(session, knox_run.url, api_token=knox.api_token)
        result = await JobRunner(db).run(KnoxDevicesJob(db, client))
        assert result.outcome is Outcome.OK, result.error
    settings = make_settings()
    assert settings.database.url is not None
    path = tmp_path / "syncd.toml"
    path.write_text(f"""
[database]
url = "{settings.database.url.get_secret_value()}"
[knoxguard]
base_url = "{knox_run.url}"
api_token = "{knox.api_token}"
[neolock]
base_url = "{neo_run.url}"
login = "{neo.login}"
password = "{neo.password}"
""")
    return path


async def phones(config_file: Path, *args: str) -> int:
    """Run `syncd phones …` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, ["--config", str(config_file), "phones", *args])


def in_state(sim: KnoxGuardSim, state: str) -> str:
    """A device of the tenant in `state`."""
    return sim.fleet.in_state(state)[0].device_uid


async def logged(db: Database) -> list[dict[str, object]]:
    """The action log, oldest first."""
    rows = await db.pool.fetch("SELECT actor, action, subject, provider, outcome, detail "
                               "FROM report.actions ORDER BY seq")
    return [dict(r) for r in rows]


async def test_delete_asks_shows_a_dry_run_then_deletes_and_logs(
        db: Database, config_file: Path, knox: KnoxGuardSim, knox_run: Running,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without a terminal and without --yes nothing is sent; --dry-run prints the request and
    sends nothing at all; with --yes a Completed phone is re-read, deleted and logged."""
    uid = in_state(knox, "Completed")
    capsys.readouterr()
    assert await phones(config_file, "delete", uid) == 1
    assert "nothing sent: no terminal to confirm on (pass --yes)" in capsys.readouterr().err
    assert await phones(config_file, "delete", uid, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"delete {uid} at knoxguard: Completed (console: Completed) as of the last sync" in out
    assert f'would send: POST {knox_run.url}/devices/delete {{"deviceUid": "{uid}"}}' in out
    assert knox_run.counters[f"{BASE_PATH}/devices/delete"].requests == 0
    assert await logged(db) == []
    lists_before = knox_run.counters[f"{BASE_PATH}/devices/list"].requests
    assert await phones(config_file, "delete", uid, "--yes") == 0
    assert "delete ok (sent)" in capsys.readouterr().out
    assert uid not in knox.devices
    assert knox_run.counters[f"{BASE_PATH}/devices/list"].requests == lists_before + 1
    [row] = await logged(db)
    assert (row["action"], row["subject"], row["provider"], row["outcome"]) == (
        "phone.delete", uid, "knoxguard", "ok")
    assert str(row["actor"]).startswith("cli")


async def test_a_phone_knox_guard_still_controls_is_not_deleted(
        db: Database, config_file: Path, knox: KnoxGuardSim, knox_run: Running,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A Locked phone: the re-read refuses the delete naming the state; nothing is sent; the
    refusal is logged."""
    uid = in_state(knox, "Locked")
    assert await phones(config_file, "delete", uid, "--yes") == 1
    assert "refused: the device is Locked" in capsys.readouterr().out
    assert knox_run.counters[f"{BASE_PATH}/devices/delete"].requests == 0
    assert uid in knox.devices
    [row] = await logged(db)
    assert (row["action"], row["outcome"]) == ("phone.delete", "refused")


async def test_neolock_phones_are_deleted_through_the_reseller_api(
        db: Database, config_file: Path, neo: neosim.NeoLockSim,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`phones delete --provider neolock` re-reads the phone at NeoLock and deletes it there."""
    uid = next(d.device_uid for d in neo.devices.values() if d.status == "Pending")
    assert await phones(config_file, "delete", uid, "--provider", "neolock", "--yes") == 0
    assert uid not in neo.devices
    [row] = await logged(db)
    assert (row["action"], row["provider"], row["outcome"]) == ("phone.delete", "neolock", "ok")


async def test_async_lock_with_wait_polls_its_transaction_to_the_end_and_logs_both(
        db: Database, config_file: Path, knox: KnoxGuardSim, knox_run: Running,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`phones async lock --wait`: lockAsync is sent with syncd's transaction id, /transaction is
    polled until the device has its result, and the log has the request and its end."""
    uid = in_state(knox, "Enrolled")
    assert await phones(config_file, "async", "lock", uid, "--message", "Payment overdue",
                        "--tel", "+998901234567", "--wait", "--yes") == 0
    out = capsys.readouterr().out
    assert "lock ok (accepted as transaction " in out
    [txn] = knox.transactions
    assert f"transaction {txn}: ok (1 of 1 done)" in out
    assert knox_run.counters[f"{BASE_PATH}/devices/lockAsync"].requests == 1
    assert knox_run.counters[f"{BASE_PATH}/devices/lock"].requests == 0
    assert knox.device(uid).status in ("Locking", "Locked")
    sent, ended = await logged(db)
    assert (sent["action"], sent["outcome"]) == ("phone.lock", "ok")
    assert isinstance(sent["detail"], dict) and sent["detail"]["asynchronous"] is True
    assert sent["detail"]["vendor_answer"]["transactionId"] == txn
    assert (ended["action"], ended["subject"], ended["outcome"]) == ("phone.transaction", uid,
                                                                     "ok")
    assert isinstance(ended["detail"], dict)
    assert (ended["detail"]["transaction_id"], ended["detail"]["action"]) == (txn, "lock")
    assert ended["detail"]["results"][0]["result"] == "SUCCESS"
    assert (await verify_chain(db)).ok


async def test_a_transaction_still_running_when_the_wait_ends_can_be_read_later(
        db: Database, config_file: Path, knox: KnoxGuardSim,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The wait is bounded: a transaction not done in --timeout exits 3 saying how to look again
    (its end not logged, since it is not known); once the tenant has carried it out, `phones
    transaction ID` reads its end and logs it."""
    knox.set_async_delay(3600.0)
    uid = in_state(knox, "Enrolled")
    assert await phones(config_file, "async", "message", uid, "--message", "Please pay",
                        "--wait", "--timeout", "1") == 3
    out = capsys.readouterr().out
    [txn] = knox.transactions
    assert f"transaction {txn}: pending (not done after 1s (0 of 1 results)" in out
    assert f"syncd phones transaction {txn} --wait" in out
    assert [r["action"] for r in await logged(db)] == ["phone.message"]
    assert await phones(config_file, "transaction", txn) == 3  # one read: still pending
    assert f"transaction {txn}: pending (not done yet" in capsys.readouterr().out
    assert knox.finish_transactions() == 1
    assert await phones(config_file, "transaction", txn, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["outcome"], answer["result"]["success"]) == ("ok", 1)
    ended = (await logged(db))[-1]
    assert (ended["action"], ended["subject"], ended["outcome"]) == ("phone.transaction", uid,
                                                                     "ok")


async def test_a_state_refusal_inside_the_transaction_is_logged_as_refused(
        db: Database, config_file: Path, knox: KnoxGuardSim,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The phone completes between the re-read and the async lock's turn: the transaction's
    4000310 is shown and logged as refused; exit 1."""
    uid = in_state(knox, "Enrolled")

    def complete_meanwhile(_page: int) -> None:
        knox.set_state(uid, "Completed")

    knox.after_list_page = complete_meanwhile
    assert await phones(config_file, "async", "lock", uid, "--wait", "--yes") == 1
    out = capsys.readouterr().out
    assert "refused (1 of 1 failed: " in out and "4000310" in out
    assert (await logged(db))[-1]["outcome"] == "refused"


async def test_async_options_are_checked_before_anything_is_sent(
        db: Database, config_file: Path, knox: KnoxGuardSim, knox_run: Running,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An async message without --message, or a blink without --interval, stops with exit 2; a
    dry run of an async lock shows lockAsync and its body; none of them sends anything."""
    uid = in_state(knox, "Enrolled")
    before = knox_run.counters.requests
    assert await phones(config_file, "async", "message", uid) == 2
    assert "needs --message" in capsys.readouterr().err
    assert await phones(config_file, "async", "blink", uid, "--message", "Pay") == 2
    assert "needs --interval" in capsys.readouterr().err
    assert await phones(config_file, "async", "lock", uid, "--message", "Call us",
                        "--dry-run") == 0
    out = capsys.readouterr().out
    assert (f'would send: POST {knox_run.url}/devices/lockAsync {{"deviceUid": "{uid}", '
            '"message": "Call us"}') in out
    assert knox_run.counters.requests == before
    assert knox.transactions == {} and await logged(db) == []

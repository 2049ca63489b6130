"""Operator phone actions at either provider: re-read, refuse by state, act, log; uploads; CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.actions.phones import (
    ALLOWED,
    KnoxVendor,
    NeoLockVendor,
    PhoneActionError,
    PhoneVendor,
    parse_upload,
    perform,
)
from syncd.cli.main import main
from syncd.db.actions import actions_for, verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app
from syncd.jobs.runner import JobRunner, Outcome
from syncd.settings.core import Settings
from syncd.sync.knoxguard import KnoxDevicesJob
from syncd.vendors.knoxguard import Blink, KnoxGuardClient
from syncd.vendors.neolock import NeoLockClient

ACTOR = "cli:tester"


@pytest.fixture
def knox() -> KnoxGuardSim:
    return KnoxGuardSim(seed=8, devices=28, transition_delay=0.05)


@pytest.fixture
async def knox_run(knox: KnoxGuardSim) -> AsyncIterator[Running]:
    async with serve(create_app(knox), prefix=BASE_PATH) as running:
        yield running


@pytest.fixture
def neo() -> neosim.NeoLockSim:
    return neosim.NeoLockSim(seed=9, devices=14, transition_delay=0.05)


@pytest.fixture
async def neo_run(neo: neosim.NeoLockSim) -> AsyncIterator[Running]:
    async with serve(neosim.create_app(neo), prefix=neosim.BASE_PATH) as running:
        yield running


@pytest.fixture
async def vendors(db: Database, knox: KnoxGuardSim, knox_run: Running, neo: neosim.NeoLockSim,
                  neo_run: Running) -> AsyncIterator[dict[str, PhoneVendor]]:
    """Both providers' clients; the Knox tenant synced into vendor.phones."""
    async with aiohttp.ClientSession() as session:
        client = KnoxGuardClient(session, knox_run.url, api_token=knox.api_token)
        result = await JobRunner(db).run(KnoxDevicesJob(db, client))
        assert result.outcome is Outcome.OK, result.error
        yield {"knoxguard": KnoxVendor(client),
               "neolock": NeoLockVendor(NeoLockClient(session, neo_run.url, neo.login,
                                                      neo.password))}


def in_state(sim: KnoxGuardSim, state: str) -> str:
    return sim.fleet.in_state(state)[0].device_uid


PARAMS: dict[str, dict[str, Any]] = {
    "message": {"message": "Please pay"}, "lock": {"message": "Locked: call us", "tel": "+99890"},
}


def params_for(action: str, uid: str) -> dict[str, Any]:
    if action == "blink":
        return {"blink": Blink.checked(device_uid=uid, interval=60, message="Pay", tel="+998901")}
    return dict(PARAMS.get(action, {}))


@pytest.mark.parametrize(("action", "state"), [
    ("approve", "Enrolled"), ("lock", "Pending"), ("unlock", "Enrolled"), ("complete", "Pending"),
    ("message", "Completed"), ("blink", "Locked")])
async def test_each_action_is_refused_in_a_state_that_does_not_allow_it(
        db: Database, vendors: dict[str, PhoneVendor], knox: KnoxGuardSim, knox_run: Running,
        action: str, state: str) -> None:
    """The device is re-read; a disallowed state is refused naming it, logged, and never sent."""
    assert state not in ALLOWED[action]
    uid = in_state(knox, state)
    outcome = await perform(db, vendors, uid, action, actor=ACTOR, params=params_for(action, uid))
    assert outcome.outcome == "refused"
    assert f"the device is {state}" in outcome.message
    route = {"message": "sendMessage"}.get(action, action)
    assert knox_run.counters[f"{BASE_PATH}/devices/{route}"].requests == 0
    [logged] = await actions_for(db, uid)
    assert (logged.actor, logged.action, logged.provider, logged.outcome) == \
        (ACTOR, f"phone.{action}", "knoxguard", "refused")
    assert logged.detail["state_before"] == state


async def test_the_vendors_state_refusal_is_logged_with_its_reason(
        db: Database, vendors: dict[str, PhoneVendor], knox: KnoxGuardSim) -> None:
    """A state change between the re-read and the call: Knox's 4000310 reason is shown and logged."""
    uid = in_state(knox, "Enrolled")

    def complete_meanwhile(_page: int) -> None:
        knox.set_state(uid, "Completed")

    knox.after_list_page = complete_meanwhile
    outcome = await perform(db, vendors, uid, "lock", actor=ACTOR)
    assert outcome.outcome == "refused"
    assert "Current status is 'Completed'." in outcome.message
    [logged] = await actions_for(db, uid)
    assert logged.outcome == "refused" and logged.detail["vendor_code"] == 4000310


async def test_an_allowed_action_is_sent_and_logged_with_the_vendor_answer(
        db: Database, vendors: dict[str, PhoneVendor], knox: KnoxGuardSim) -> None:
    """Lock on an Enrolled phone reaches Locked; the log has the answer and no secret."""
    uid = in_state(knox, "Enrolled")
    outcome = await perform(db, vendors, uid, "lock", actor=ACTOR, params=PARAMS["lock"])
    assert outcome.outcome == "ok"
    await knox.wait_for_state(uid, "Locked")
    [logged] = await actions_for(db, uid)
    assert logged.detail["vendor_answer"]["objectId"] == knox.device(uid).object_id
    assert logged.detail["state_before"] == "Enrolled"
    assert knox.api_token not in str(logged.detail)
    assert (await verify_chain(db)).ok


async def test_the_provider_is_found_in_vendor_phones_or_must_be_named(
        db: Database, vendors: dict[str, PhoneVendor], knox: KnoxGuardSim,
        neo: neosim.NeoLockSim) -> None:
    """One provider listing the phone is used; both or neither need an explicit provider."""
    uid = in_state(knox, "Enrolled")
    await db.pool.execute(
        "INSERT INTO vendor.phones (provider, device_uid, raw, first_seen_at, last_seen_at, "
        "last_changed_at) VALUES ('neolock', $1, '{}', now(), now(), now())", uid)
    with pytest.raises(PhoneActionError, match="both knoxguard and neolock: give --provider"):
        await perform(db, vendors, uid, "unlock", actor=ACTOR)
    neo_uid = next(d.device_uid for d in neo.devices.values() if d.status == "Enrolled")
    with pytest.raises(PhoneActionError, match="no provider"):
        await perform(db, vendors, neo_uid, "lock", actor=ACTOR)
    done = await perform(db, vendors, neo_uid, "lock", actor=ACTOR, provider="neolock",
                         params=PARAMS["lock"])
    assert (done.provider, done.outcome) == ("neolock", "ok")
    with pytest.raises(PhoneActionError, match="neolock has no blink"):
        await perform(db, vendors, neo_uid, "blink", actor=ACTOR, provider="neolock",
                      params=params_for("blink", neo_uid))


def test_upload_files_report_invalid_lines_by_number() -> None:
    """CSV with a header or plain lines; bad ids, bad IMEI check digits and repeats are listed."""
    parsed = parse_upload(["deviceUid,note", "356938035643809,a", "", "# comment",
                           "356938035643808,b", "R58N12ABCDE,c", "bad id,d", "R58N12ABCDE,e"])
    assert parsed.uids == ["356938035643809", "R58N12ABCDE"]
    assert [(n, why) for n, _line, why in parsed.invalid] == [
        (5, "IMEI check digit is wrong"),
        (7, "not a device id (IMEI or serial: 8 to 20 letters and digits)"),
        (8, "repeats line 6")]
    assert parse_upload(["356938035643809", "R58N12ABCDE"]).uids == ["356938035643809",
                                                                     "R58N12ABCDE"]


async def cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


@pytest.fixture
def config_file(make_settings: Callable[..., Settings], tmp_path: Path, knox: KnoxGuardSim,
                knox_run: Running, neo: neosim.NeoLockSim, neo_run: Running) -> Path:
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


async def test_cli_upload_stops_on_invalid_lines_and_shows_vendor_reasons(
        db: Database, config_file: Path, tmp_path: Path, knox: KnoxGuardSim, knox_run: Running,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid lines: nothing sent, each line named. Valid file: uploaded, invalidReasons shown."""
    bad = tmp_path / "bad.txt"
    bad.write_text("356938035643809\nnot-an-imei\n")
    assert await cli(["--config", str(config_file), "phones", "upload", "--provider",
                      "knoxguard", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: not a device id" in err and "nothing uploaded" in err
    assert knox_run.counters[BASE_PATH + "/devices/uploads"].requests == 0
    existing = next(iter(knox.devices))
    good = tmp_path / "good.csv"
    good.write_text(f"imei\n356938035643809\n{existing}\n")
    assert await cli(["--config", str(config_file), "phones", "upload", "--provider",
                      "knoxguard", str(good)]) == 1
    out = capsys.readouterr().out
    assert "2 sent, 1 accepted, 1 refused" in out
    assert f"refused {existing}: device already exists" in out
    assert "356938035643809" in knox.devices
    logged = await db.pool.fetchval(
        "SELECT count(*) FROM ops.remediation_log WHERE action = 'phone.upload'")
    assert logged == 1


async def test_cli_actions_show_and_blink_validation(
        db: Database, vendors: dict[str, PhoneVendor], config_file: Path, knox: KnoxGuardSim,
        knox_run: Running, capsys: pytest.CaptureFixture[str]) -> None:
    """`phones lock` acts and logs; `phones show` prints state and console name and the action;
    a blink breaking the documented rules is refused before anything is sent."""
    uid = in_state(knox, "Enrolled")
    base = ["--config", str(config_file), "phones"]
    assert await cli([*base, "lock", uid, "--message", "Call us", "--tel", "+998901",
                      "--yes"]) == 0
    assert "lock ok" in capsys.readouterr().out
    assert await cli([*base, "show", uid]) == 0
    out = capsys.readouterr().out
    assert "state:          Enrolled (console: Active)" in out  # as of the last sync
    assert "phone.lock knoxguard ok" in out
    assert await cli([*base, "blink", in_state(knox, "Blinked"), "--interval", "2",
                      "--message", "Pay", "--tel", "+998901"]) == 1
    assert "interval must be between 3 and 86400" in capsys.readouterr().err
    assert knox_run.counters[BASE_PATH + "/devices/blink"].requests == 0
    assert await cli([*base, "approve", in_state(knox, "Locked")]) == 1
    assert "approve refused (refused: the device is Locked (console: Locked)" in \
        capsys.readouterr().out


async def test_cli_upload_to_neolock_is_sent_and_logged(
        db: Database, config_file: Path, tmp_path: Path, neo: neosim.NeoLockSim,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`phones upload --provider neolock` sends one IMEI a line and logs the vendor's answer."""
    good = tmp_path / "imeis.txt"
    good.write_text("356938035643809\n\n359881030314355\n")
    assert await cli(["--config", str(config_file), "phones", "upload", "--provider", "neolock",
                      str(good)]) == 0
    assert "2 sent" in capsys.readouterr().out
    assert {"356938035643809", "359881030314355"} <= set(neo.devices)
    [row] = await db.pool.fetch("SELECT provider, outcome, detail FROM ops.remediation_log "
                                "WHERE action = 'phone.upload'")
    assert (row["provider"], row["outcome"]) == ("neolock", "ok")
    assert row["detail"]["devices"] == ["356938035643809", "359881030314355"]

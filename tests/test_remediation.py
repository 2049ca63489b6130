"""Remediation in apply mode: re-read, act only on drift that holds, cap, cooldown, action log."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from syncd.db import drift
from syncd.db.actions import actions_for, verify_chain
from syncd.db.pool import Database
from syncd.devtools.simulators import biotime as biosim
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import Running, serve
from syncd.reconcile.engine import reconcile
from syncd.reconcile.job import ReconcileJob, build_remediators
from syncd.settings.core import Settings
from syncd.sync.base import RunContext
from syncd.sync.biotime import BioTimeTerminalsJob, biotime_client

LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)


@pytest.fixture
async def neo() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 6 devices and quick transitions."""
    state = neosim.NeoLockSim(seed=11, devices=6, transition_delay=0.05, push_backoff=0.05)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession() as http:
        yield http


def apply_settings(make_settings: Callable[..., Settings], running: Running,
                   sim: neosim.NeoLockSim, **reconcile_conf: Any) -> Settings:
    return make_settings(neolock={"base_url": running.url, "login": sim.login,
                                  "password": sim.password},
                         reconcile={"mode": "apply", "grace_seconds": 600, **reconcile_conf})


async def plant(db: Database, uid: str, recorded_state: str, desired: str, *,
                provider: str = "neolock") -> None:
    """A contract and the vendor row as syncd last saw it, both older than the grace window."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO vendor.phones (provider, device_uid, vendor_state, raw, first_seen_at,"
            " last_seen_at, last_changed_at) VALUES ($4, $1, $2, '{}', $3, $3, $3)",
            uid, recorded_state, LONG_AGO, provider)
        await conn.execute("INSERT INTO local.phone_contracts (device_uid, desired_state,"
                           " lock_message, contact_tel, updated_at) VALUES ($1, $2, 'Pay',"
                           " '+998900000000', $3)", uid, desired, LONG_AGO)


async def run_job(db: Database, settings: Settings, session: aiohttp.ClientSession) -> None:
    job = ReconcileJob(db, settings, build_remediators(settings, db, session))
    await job.run(RunContext(db=db, job=job.name))


async def log_rows(db: Database) -> list[tuple[str, str, str, str]]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT actor, action, subject, outcome FROM ops.remediation_log"
                                " ORDER BY seq")
    return [(r["actor"], r["action"], r["subject"], r["outcome"]) for r in rows]


async def test_refusing_vendor_is_logged_capped_and_not_retried_in_a_loop(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        neo: tuple[neosim.NeoLockSim, Running]) -> None:
    """Two Pending devices NeoLock will not lock: one attempt per run (cap 1), each refused once."""
    sim, running = neo
    settings = apply_settings(make_settings, running, sim, max_actions_per_run=1,
                              cooldown_seconds=3600)
    uids = [sim.fleet.add_device(state="Pending").device_uid for _ in range(2)]
    for uid in uids:
        await plant(db, uid, "Enrolled", "locked")  # syncd last saw it Enrolled
    for _ in range(4):
        await run_job(db, settings, session)
    rows = await log_rows(db)
    assert sorted(rows) == sorted(("reconcile", "phone.lock", uid, "refused") for uid in uids)
    (latest,) = await actions_for(db, uids[0], limit=1)
    assert "DEVICE_STATE_INVALID" in latest.detail["error"] or "state" in latest.detail["error"]
    assert {c.subject for c in await drift.list_cases(db, "open")} >= set(uids)
    assert (await verify_chain(db)).ok


async def test_apply_locks_a_device_and_the_case_resolves(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        neo: tuple[neosim.NeoLockSim, Running]) -> None:
    """A device due for locking is locked with the contract's message; the next reconcile resolves."""
    sim, running = neo
    settings = apply_settings(make_settings, running, sim)
    uid = sim.fleet.add_device(state="Enrolled").device_uid
    await plant(db, uid, "Enrolled", "locked")
    await run_job(db, settings, session)
    assert await log_rows(db) == [("reconcile", "phone.lock", uid, "ok")]
    assert sim.fleet.get(uid).message == "Pay"
    await reconcile(db, settings, dt.datetime.now(dt.UTC))
    assert await drift.list_cases(db, "open") == []


async def test_drift_that_no_longer_holds_is_skipped_and_refreshed(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        neo: tuple[neosim.NeoLockSim, Running]) -> None:
    """A device already Locked at the vendor is not locked again; the re-read resolves the case."""
    sim, running = neo
    settings = apply_settings(make_settings, running, sim)
    uid = sim.fleet.add_device(state="Locked").device_uid
    await plant(db, uid, "Enrolled", "locked")
    await run_job(db, settings, session)
    assert await log_rows(db) == [("reconcile", "phone.lock", uid, "skipped")]
    assert sim.fleet.get(uid).status == "Locked"
    await reconcile(db, settings, dt.datetime.now(dt.UTC))
    assert await drift.list_cases(db, "open") == []


async def test_unlock_is_planned_but_never_done_unless_allowed(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        neo: tuple[neosim.NeoLockSim, Running]) -> None:
    """A paying customer locked out gets a critical case and a plan, but no unlock by default."""
    sim, running = neo
    uid = sim.fleet.add_device(state="Locked").device_uid
    await plant(db, uid, "Locked", "active")
    await run_job(db, apply_settings(make_settings, running, sim), session)
    assert await log_rows(db) == [] and sim.fleet.get(uid).status == "Locked"
    (case,) = await drift.list_cases(db, "open")
    assert case.severity == "critical" and case.plan is not None and not case.plan["allowed"]


async def test_plan_mode_stores_the_plan_and_acts_on_nothing(
        db: Database, make_settings: Callable[..., Settings], session: aiohttp.ClientSession,
        neo: tuple[neosim.NeoLockSim, Running]) -> None:
    """In plan mode the case carries its plan and the vendor is not called to act."""
    sim, running = neo
    uid = sim.fleet.add_device(state="Enrolled").device_uid
    await plant(db, uid, "Enrolled", "locked")
    await run_job(db, apply_settings(make_settings, running, sim, mode="plan"), session)
    (case,) = await drift.list_cases(db, "open")
    assert case.plan == {"action": "phone.lock", "allowed": True}
    assert await log_rows(db) == [] and sim.fleet.get(uid).status == "Enrolled"


async def test_terminal_alias_and_area_are_fixed_with_put(
        db: Database, make_settings: Callable[..., Settings],
        session: aiohttp.ClientSession) -> None:
    """A terminal whose alias and area differ from local.terminals is PUT back in line."""
    sim = biosim.BioTimeSim(seed=4, terminals=3, unknown=0, timezone="UTC")
    async with serve(biosim.create_app(sim), prefix=biosim.BASE_PATH) as running:
        settings = make_settings(biotime={"base_url": running.url, "username": sim.username,
                                          "password": sim.password, "timezone": "UTC"},
                                 reconcile={"mode": "apply"})
        assert settings.biotime is not None
        terminal = next(iter(sim.known_terminals()))
        async with db.connection() as conn:
            await conn.executemany("INSERT INTO local.terminals (sn, alias, area_code)"
                                   " VALUES ($1, $2, $3)",
                                   [(t.sn, t.alias, sim.areas[t.area_id].code)
                                    for t in sim.known_terminals()])
            await conn.execute("UPDATE local.terminals SET alias = 'Front desk', area_code = 'S02'"
                               " WHERE sn = $1", terminal.sn)
        sync = BioTimeTerminalsJob(db, biotime_client(settings.biotime, session), settings.biotime)
        await sync.run(RunContext(db=db, job=sync.name))
        await run_job(db, settings, session)
        assert (terminal.alias, sim.areas[terminal.area_id].code) == ("Front desk", "S02")
        assert await log_rows(db) == [("reconcile", "terminal.update", terminal.sn, "ok")]
        result = await reconcile(db, settings, dt.datetime.now(dt.UTC))
        assert all(f.kind != "terminal_differs" for f in result.findings)



async def test_apply_locks_a_knox_guard_device_through_the_tenant_api(
        db: Database, make_settings: Callable[..., Settings],
        session: aiohttp.ClientSession) -> None:
    """A Knox Guard device due for locking is re-read, locked at the tenant and logged as knoxguard."""
    from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app

    sim = KnoxGuardSim(seed=8, devices=4, transition_delay=0.05)
    async with serve(create_app(sim), prefix=BASE_PATH) as running:
        settings = make_settings(knoxguard={"base_url": running.url, "api_token": sim.api_token},
                                 reconcile={"mode": "apply"})
        uid = sim.fleet.in_state("Enrolled")[0].device_uid
        await plant(db, uid, "Enrolled", "locked", provider="knoxguard")
        await run_job(db, settings, session)
        assert sim.fleet.get(uid).status in ("Locking", "Locked")
    assert await log_rows(db) == [("reconcile", "phone.lock", uid, "ok")]
    (action,) = await actions_for(db, uid)
    assert action.provider == "knoxguard"

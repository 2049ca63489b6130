"""Carry out allowed plans: re-read the subject from the vendor, act only if drift still holds.

Each run acts on at most `reconcile.max_actions_per_run` cases and leaves a subject alone for
`reconcile.cooldown_seconds` after reconcile last acted on it or was refused, so a vendor that
refuses is not asked again in a loop. Every action, refusal, failure and skip is appended to the
action log with actor `reconcile`.

One actor per subject: a run first claims its cases (`drift.claim`), checking and recording the
cooldown and the cap in that one transaction. Appliers running at once (the daemon's job, any
number of `syncd reconcile --apply`) therefore never act on one subject twice within the
cooldown, and share one cap: the claims of runs still at work count against it, so overlapping
runs together act on at most `max_actions_per_run` cases. A run's claims are released when it
ends; those of a run that died stop counting when their lease (renewed after every attempt)
runs out.

A `Remediator` per (action, provider) does the vendor work; the Knox Guard and Codelocks branches
add theirs to the mapping `build_jobs` hands over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from syncd.actions.phones import KnoxVendor
from syncd.db import drift
from syncd.db.actions import Outcome, record_action
from syncd.db.pool import Database
from syncd.db.upsert import upsert
from syncd.errors import SyncdError, VendorError, VendorNotFound, VendorStateInvalid
from syncd.settings.drift import ReconcileSettings
from syncd.sync import biotime as biotime_sync
from syncd.sync import knoxguard as knox_sync
from syncd.sync import neolock as neolock_sync
from syncd.vendors.biotime import BioTimeClient
from syncd.vendors.knoxguard import KnoxGuardClient
from syncd.vendors.knoxguard.models import Device as KnoxDevice
from syncd.vendors.neolock.client import NeoLockClient

log = structlog.get_logger(__name__)
ACTOR = "reconcile"
# How long a run's claims count against the cap without a sign of life; renewed after every
# attempt (a re-read, an action and a re-read, each bounded by the vendor client's timeouts).
CLAIM_LEASE = dt.timedelta(minutes=10)


class Remediator(Protocol):
    """Re-reads a case's subject from its vendor and fixes it."""

    async def recheck(self, case: drift.Case) -> tuple[bool, dict[str, Any]]:
        """Re-read the subject (and store what was read): does the drift still hold, and facts."""

    async def act(self, case: drift.Case) -> dict[str, Any]:
        """Carry out the plan; raise VendorError if the vendor refuses; return facts to log."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What remediation did for one case."""

    case_id: int
    subject: str
    action: str
    outcome: Outcome
    detail: dict[str, Any]


# Where each phone action is going: states that mean "the drift no longer holds".
_PHONE_DONE = {"phone.lock": {"Locked", "Locking"},
               "phone.unlock": {"Enrolled", "Blinked", "Unlocking"},
               "phone.complete": {"Completed", "Completing"}}


class NeoLockPhones:
    """lock / unlock / complete through NeoLock; the fresh device is stored before deciding."""

    def __init__(self, db: Database, client: NeoLockClient, conf: ReconcileSettings,
                 action: str) -> None:
        self.db, self.client, self.conf, self.action = db, client, conf, action

    async def recheck(self, case: drift.Case) -> tuple[bool, dict[str, Any]]:
        """GET the device, store it; the drift holds unless it is where the action would take it."""
        found = await neolock_sync.refresh(self.client, [case.subject], concurrency=1)
        if found.failed:
            raise VendorError("neolock", found.failed[case.subject])
        await neolock_sync.store(self.db, found)
        if found.gone:
            return False, {"vendor_state": None, "gone": True}
        state = found.devices[0].status
        return state not in _PHONE_DONE[self.action], {"vendor_state": state}

    async def act(self, case: drift.Case) -> dict[str, Any]:
        """Send the command; re-read the device so the next reconcile sees where it went."""
        uid = case.subject
        if self.action == "phone.lock":
            row = await self.db.fetchrow("reconcile_contract", uid)
            message = (row["lock_message"] if row else None) or self.conf.lock_message
            tel = (row["contact_tel"] if row else None) or self.conf.lock_tel
            result = await self.client.lock(uid, message, tel)
        elif self.action == "phone.unlock":
            result = await self.client.unlock(uid)
        else:
            result = await self.client.complete(uid)
        found = await neolock_sync.refresh(self.client, [uid], concurrency=1)
        await neolock_sync.store(self.db, found)
        return {"result": result.result, "vendor_state":
                found.devices[0].status if found.devices else None}


class KnoxGuardPhones:
    """lock / unlock / complete on a Knox Guard tenant; the fresh device is stored first."""

    def __init__(self, db: Database, client: KnoxGuardClient, conf: ReconcileSettings,
                 action: str) -> None:
        self.db, self.vendor, self.conf, self.action = db, KnoxVendor(client), conf, action

    async def recheck(self, case: drift.Case) -> tuple[bool, dict[str, Any]]:
        """Read the device from devices/list and store it; does the drift still hold?"""
        try:
            device = await self.vendor.client.get_device(case.subject)
        except VendorNotFound:
            return False, {"vendor_state": None, "gone": True}
        await self._store(device)
        return device.status not in _PHONE_DONE[self.action], {"vendor_state": device.status}

    async def act(self, case: drift.Case) -> dict[str, Any]:
        """Send the action; store the device as the tenant then lists it."""
        params: dict[str, Any] = {}
        if self.action == "phone.lock":
            row = await self.db.fetchrow("reconcile_contract", case.subject)
            params = {"message": (row["lock_message"] if row else None) or self.conf.lock_message,
                      "tel": (row["contact_tel"] if row else None) or self.conf.lock_tel or None}
        answer = await self.vendor.act(self.action.removeprefix("phone."), case.subject, params)
        with contextlib.suppress(VendorError):
            await self._store(await self.vendor.client.get_device(case.subject))
        return {"vendor_answer": answer.model_dump(mode="json", by_alias=True, exclude_none=True)}

    async def _store(self, device: KnoxDevice) -> None:
        async with self.db.transaction() as conn:
            await upsert(conn, knox_sync.PHONES, [knox_sync.device_record(device)],
                         dt.datetime.now(dt.UTC))


class BioTimeTerminals:
    """terminal.update: PUT the business's alias and area onto the terminal."""

    def __init__(self, db: Database, client: BioTimeClient, zone: ZoneInfo) -> None:
        self.db, self.client, self.zone = db, client, zone

    async def recheck(self, case: drift.Case) -> tuple[bool, dict[str, Any]]:
        """GET the terminal by id, store it; the drift holds while alias or area differ."""
        terminal_id = case.detail.get("terminal_id")
        if not isinstance(terminal_id, int):
            return False, {"reason": "no terminal id known"}
        try:
            terminal = await self.client.get_terminal(terminal_id)
        except VendorNotFound:
            return False, {"gone": True}
        async with self.db.transaction() as conn:
            await upsert(conn, biotime_sync.TERMINALS,
                         [biotime_sync.terminal_record(terminal, self.zone)],
                         dt.datetime.now(dt.UTC))
        holds = (terminal.alias, terminal.area_code) != (case.detail.get("alias"),
                                                         case.detail.get("area_code"))
        return holds, {"alias": terminal.alias, "area_code": terminal.area_code}

    async def act(self, case: drift.Case) -> dict[str, Any]:
        """PUT /iclock/api/terminals/{id}/ with the expected alias and area (sn and ip kept)."""
        terminal_id = int(case.detail["terminal_id"])
        current = await self.client.get_terminal(terminal_id)
        area_code = case.detail.get("area_code")
        area_id = current.area.id if current.area and current.area.code == area_code else None
        if area_code is not None and area_id is None:
            area_id = await self.db.fetchval("reconcile_area_id", area_code)
            if area_id is None:
                raise VendorStateInvalid("biotime", f"no BioTime area with code {area_code!r} "
                                                    "is known from the terminal listing")
        updated = await self.client.update_terminal(
            terminal_id, current.sn, str(case.detail.get("alias") or current.alias or current.sn),
            current.ip_address or "0.0.0.0", area=area_id, terminal_tz=current.terminal_tz)  # noqa: S104
        async with self.db.transaction() as conn:
            await upsert(conn, biotime_sync.TERMINALS,
                         [biotime_sync.terminal_record(updated, self.zone)],
                         dt.datetime.now(dt.UTC))
        return {"alias": updated.alias, "area_code": updated.area_code}


Remediators = Mapping[tuple[str, str | None], Remediator]


async def apply(db: Database, remediators: Remediators, conf: ReconcileSettings,
                now: dt.datetime) -> list[Attempt]:
    """Claim cases within the cap and cooldown, act on their plans; log every outcome."""
    doable = [f"{action}|{provider or ''}" for action, provider in remediators]
    if not doable or conf.max_actions_per_run == 0:
        return []
    run = uuid.uuid4()
    cases = await drift.claim(db, now, run=run, doable=doable,
                              cooldown=dt.timedelta(seconds=conf.cooldown_seconds),
                              cap=conf.max_actions_per_run, lease=CLAIM_LEASE)
    attempts: list[Attempt] = []
    try:
        for case in cases:
            action = str((case.plan or {}).get("action"))
            attempts.append(await _attempt(db, remediators[(action, case.provider)], case,
                                           action))
            await drift.renew_claims(db, run, CLAIM_LEASE)
    finally:
        if cases:
            # Best effort: if the database is gone, the lease ends the claims instead.
            with contextlib.suppress(SyncdError):
                await drift.release_claims(db, run)
    return attempts


async def _attempt(db: Database, remediator: Remediator, case: drift.Case,
                   action: str) -> Attempt:
    base = {"case_id": case.id, "kind": case.kind, "expected": case.expected,
            "actual": case.actual}
    outcome: Outcome
    try:
        holds, facts = await remediator.recheck(case)
        if not holds:
            outcome, detail = "skipped", base | facts | {"reason": "drift no longer holds"}
        else:
            outcome, detail = "ok", base | await remediator.act(case)
    except VendorStateInvalid as err:
        outcome, detail = "refused", base | {"error": str(err)[:500]}
    except VendorError as err:
        outcome, detail = "failed", base | {"error": str(err)[:500]}
    await record_action(db, actor=ACTOR, action=action, subject=case.subject, outcome=outcome,
                        provider=case.provider, detail=detail)
    log.info("reconcile.action", action=action, subject=case.subject, outcome=outcome)
    return Attempt(case.id, case.subject, action, outcome, detail)

"""The drift part of `syncd demo`: a case opens, a signed alert arrives, a fix resolves it."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from typing import Any

import aiohttp

from syncd.db import drift
from syncd.db.pool import Database
from syncd.devtools.simulators.alert_receiver import AlertReceiver
from syncd.jobs.runner import JobRunner
from syncd.sync.base import Job


def new_secret() -> str:
    """A fresh Standard Webhooks secret for the demo's receiver."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def _until(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return False


def _alert(receiver: AlertReceiver, type_: str, subject: str) -> Any:
    async def seen() -> bool:
        return any(r.body.get("type") == type_ and r.body.get("subject") == subject
                   for r in receiver.received)
    return seen


async def drift_cycle(db: Database, runner: JobRunner, reconcile_job: Job,
                      receiver: AlertReceiver, neolock_url: str, auth: aiohttp.BasicAuth,
                      uid: str) -> int:
    """Reconcile, show the cases, wait for the signed alert, fix at the simulator, see it resolve."""
    failures = 0
    await asyncio.sleep(1.2)  # past the demo's 1 s grace window
    result = await runner.run(reconcile_job)
    cases = await drift.list_cases(db, "open")
    print(f"  job reconcile              {result.outcome.value:<7} opened {len(cases)} case(s):")
    info: dict[str, int] = {}
    for case in cases:
        if case.severity == "info":  # devices/terminals the business has no record of
            info[case.kind] = info.get(case.kind, 0) + 1
            continue
        plan = (case.plan or {}).get("action", "-")
        print(f"    #{case.id:<3} {case.severity:<8} {case.kind:<22} {case.subject:<18} "
              f"expected {case.expected!s:<12} actual {case.actual!s:<16} plan {plan}")
    if info:
        print("    and info (recorded, not alerted): "
              + ", ".join(f"{kind} {n}" for kind, n in sorted(info.items())))
    ok = await _until(_alert(receiver, "drift.opened", uid))
    failures += not ok
    got = [r for r in receiver.received if r.body.get("subject") == uid]
    if got:
        print(f"  receiver got {got[0].body['type']} for {uid}, webhook-id {got[0].webhook_id}, "
              f"signature {'verified' if got[0].verified else 'NOT verified'}")
        failures += not got[0].verified
    # The fix, at the vendor: the lender locks the phone through NeoLock, which pushes the change.
    async with aiohttp.ClientSession() as session:
        reply = await session.get(f"{neolock_url}/clients/token", auth=auth)
        token = (await reply.json())["data"]["access_token"]
        await session.post(f"{neolock_url}/clients/devices/lock",
                           json={"deviceUid": uid, "message": "Payment overdue",
                                 "tel": "+998900000000"}, headers={"x-knox-apitoken": token})

    async def locked() -> bool:
        async with db.connection() as conn:
            state = await conn.fetchval("SELECT vendor_state FROM vendor.phones "
                                        "WHERE device_uid = $1", uid)
        return bool(state == "Locked")

    failures += not await _until(locked)
    await runner.run(reconcile_job)
    ok = await _until(_alert(receiver, "drift.resolved", uid))
    failures += not ok
    resolved = [r for r in receiver.received
                if r.body.get("subject") == uid and r.body.get("type") == "drift.resolved"]
    if resolved:
        print(f"  fixed at the simulator: receiver got drift.resolved for {uid}, webhook-id "
              f"{resolved[0].webhook_id}, signature "
              f"{'verified' if resolved[0].verified else 'NOT verified'}")
        failures += not resolved[0].verified
    else:
        print(f"  drift.resolved for {uid} did NOT arrive")
    return failures

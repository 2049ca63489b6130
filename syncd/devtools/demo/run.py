"""`syncd demo`: a full cycle against the built-in simulators on an embedded PostgreSQL.

Subscribe, pull, receive pushes, and show what landed in the report views. Nothing leaves
loopback; the state lives in a temp dir unless --data-dir is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from syncd.app import create_app
from syncd.db import demo as demo_db
from syncd.devtools.demo.drift import drift_cycle, new_secret
from syncd.devtools.simulators.alert_receiver import AlertReceiver
from syncd.devtools.simulators.alert_receiver import create_app as create_receiver
from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.runner import Simulators, run_all
from syncd.jobs.catalog import build_jobs
from syncd.jobs.runner import JobRunner
from syncd.logs import Redactor, configure
from syncd.settings.core import Settings
from syncd.web import keys


def _settings(data_dir: Path, port: int, sims: Simulators, hook: dict[str, Any]) -> Settings:
    neo = sims.neolock.sim
    bt = sims.biotime.sim
    ck = sims.codelocks.sim
    return Settings(
        data_dir=data_dir,
        server={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        logging={"level": "warning"},
        neolock={"base_url": sims.neolock.url, "login": neo.login, "password": neo.password},
        biotime={"base_url": sims.biotime.url, "username": bt.username, "password": bt.password,
                 "timezone": "Asia/Tashkent"},
        codelocks={"base_url": sims.codelocks.url, "api_key": ck.api_key,
                   "access_keys": list(ck.access_keys), "plan": ck.plan},
        # The demo drives every job itself, in order; the scheduler runs none of them.
        jobs={name: {"enabled": False} for name in (
            "housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices",
            "biotime-terminals", "biotime-punches", "k3-locks", "k3-audit", "k3-clients",
            "reconcile")},
        alerts={"hooks": [hook], "poll_seconds": 0.2},
        reconcile={"grace_seconds": 1},
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return False


async def run(args: argparse.Namespace, redactor: Redactor) -> int:
    """Run the demo; return 0 when every step worked."""
    configure("warning", "console", redactor)  # the demo prints its own summary
    own_dir = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="syncd-demo-"))
    try:
        receiver = AlertReceiver(new_secret())
        async with run_all(seed=7, devices=40, locks=5, terminals=8) as sims, \
                serve(create_receiver(receiver)) as hook:
            return await _cycle(data_dir, sims, redactor, receiver, hook.url + "/syncd")
    finally:
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _cycle(data_dir: Path, sims: Simulators, redactor: Redactor, receiver: AlertReceiver,
                 hook_url: str) -> int:
    port = _free_port()
    settings = _settings(data_dir, port, sims, {"url": hook_url, "secret": receiver.secret,
                                                "name": "demo-receiver"})
    started = time.monotonic()
    app = create_app(settings, redactor)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"syncd up on http://127.0.0.1:{port} (embedded PostgreSQL under {data_dir}) "
          f"in {time.monotonic() - started:.1f}s")
    failures = 0
    try:
        db = app[keys.DB]
        jobs = build_jobs(settings, db, app[keys.HTTP], neolock=app[keys.NEOLOCK])
        # The business's own records of its attendance terminals: those it knows, plus one that
        # BioTime has never heard of (so report.terminals shows ok/offline/unknown/missing).
        await demo_db.seed_terminals(
            db, [(t.sn, t.alias) for t in sims.biotime.sim.known_terminals()]
            + [("CKPF000000LOST", "Warehouse back door")])
        # The smartphone clients it expects on its K3 locks: all the simulator's but the last,
        # so reconcile shows one client the business does not know of.
        k3_clients = sorted((lock_id, email) for lock_id, clients in sims.codelocks.sim.clients.items()
                            for email in clients)
        await demo_db.seed_k3_clients(db, k3_clients[:-1])
        job_runner = JobRunner(db, scrub=redactor.scrub)
        for name in ("neolock-subscription", "neolock-uploads", "neolock-devices",
                     "biotime-terminals", "k3-locks", "k3-audit", "k3-clients"):
            if name not in jobs:
                continue
            result = await job_runner.run(jobs[name])
            failures += result.outcome.value != "ok"
            print(f"  job {name:<22} {result.outcome.value:<7} items={result.items:<4} "
                  f"requests={result.requests}" + (f" error={result.error}" if result.error else ""))
        sub = sims.neolock.sim.subscription
        print(f"  NeoLock subscription: {sub.rsplit('/', 1)[0] + '/<secret>' if sub else 'none'}")

        # Contracts the business wants: lock two active phones, keep one locked phone active.
        neo = sims.neolock.sim
        enrolled = [uid for uid, d in sorted(neo.devices.items()) if d.status == "Enrolled"][:3]
        await demo_db.seed_contracts(
            db, [(uid, "locked", f"LOAN-{i}") for i, uid in enumerate(enrolled)])
        drift_before = await demo_db.phones_in_drift(db)
        # The business's lender locks the first two through NeoLock: NeoLock pushes the changes.
        async with aiohttp.ClientSession() as session:
            token = (await (await session.get(
                f"{sims.neolock.url}/clients/token",
                auth=aiohttp.BasicAuth(neo.login, neo.password))).json())["data"]["access_token"]
            for uid in enrolled[:2]:
                await session.post(f"{sims.neolock.url}/clients/devices/lock",
                                   json={"deviceUid": uid, "message": "Payment overdue",
                                         "tel": "+998900000000"},
                                   headers={"x-knox-apitoken": token})
        ok = await _wait(lambda: _locked(db, enrolled[:2]))
        failures += not ok
        events, processed = await demo_db.event_counts(db)
        drift_after = await demo_db.phones_in_drift(db)
        print(f"  pushes received {events}, processed {processed}; "
              f"phones in drift {drift_before} → {drift_after} "
              f"({'locks confirmed by GET' if ok else 'locks NOT seen'})")
        print("  report.phones: " + ", ".join(
            f"{state} {n}" for state, n in await demo_db.phone_states(db)))
        print("  report.terminals: " + ", ".join(
            f"{status} {n}" for status, n in await demo_db.terminal_states(db)))
        print("  Codelocks calls this month: " + (", ".join(
            f"{category} {calls}/{quota}" for category, calls, quota
            in await demo_db.api_usage(db)) or "none"))
        failures += await drift_cycle(db, job_runner, jobs["reconcile"], receiver,
                                      sims.neolock.url, aiohttp.BasicAuth(neo.login, neo.password),
                                      enrolled[2])
        async with aiohttp.ClientSession() as session:
            ready = await session.get(f"http://127.0.0.1:{port}/readyz")
            status = await (await session.get(f"http://127.0.0.1:{port}/api/v1/status")).json()
        print(f"  /readyz {ready.status}; failing jobs: {status['failing_jobs'] or 'none'}")
        failures += ready.status != 200
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    print("demo OK" if failures == 0 else f"demo finished with {failures} problem(s)")
    return 0 if failures == 0 else 1


async def _locked(db: Any, uids: list[str]) -> bool:
    return await demo_db.locked_count(db, uids) == len(uids)

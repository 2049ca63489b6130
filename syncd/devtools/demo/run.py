"""`syncd demo`: a full cycle against the built-in simulators on an embedded PostgreSQL.

Subscribe, pull, receive pushes, and show what landed in the report views. Nothing leaves
loopback; the state lives in a temp dir unless --data-dir is given. It ends by printing the
operator console's URL. With --keep, syncd then goes on as `syncd run` would, on the same ports
and database, its scheduler running every job every KEEP_EVERY seconds (so the console's charts
grow), until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import tempfile
import threading
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
from syncd.web import server as web_server

KEEP_EVERY = 30.0  # seconds between scheduled runs of each job under --keep
CYCLE_JOBS = ("neolock-subscription", "neolock-uploads", "neolock-devices", "biotime-terminals",
              "k3-locks", "k3-audit", "k3-clients")
DEMO_JOBS = ("housekeeping", *CYCLE_JOBS, "biotime-punches", "reconcile")
# The app device registry's example body (vendor-docs/app-device-registry-api.md), one per device.
APP_DEVICES = [{"mac_address": f"A1B2C3D4E5{n:02X}", "device_os": "Android",
                "device_version": "14", "device_type": "Mobile", "app_version": "2.0",
                "app_name": "MyApp"} for n in range(6)]


def _settings(data_dir: Path, port: int, admin_port: int, sims: Simulators,
              hook: dict[str, Any], *, scheduled: bool = False) -> Settings:
    # The cycle drives every job itself, in order: the scheduler runs none of them. Kept, the
    # scheduler runs them all (but housekeeping and punches) every KEEP_EVERY seconds.
    jobs: dict[str, Any] = {name: {"enabled": False} for name in DEMO_JOBS}
    if scheduled:
        jobs.update({name: {"interval_seconds": KEEP_EVERY, "jitter_seconds": 3.0}
                     for name in (*CYCLE_JOBS, "reconcile")})
    neo = sims.neolock.sim
    bt = sims.biotime.sim
    ck = sims.codelocks.sim
    return Settings(
        data_dir=data_dir,
        server={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        admin={"host": "127.0.0.1", "port": admin_port},
        logging={"level": "warning"},
        neolock={"base_url": sims.neolock.url, "login": neo.login, "password": neo.password},
        biotime={"base_url": sims.biotime.url, "username": bt.username, "password": bt.password,
                 "timezone": "Asia/Tashkent"},
        codelocks={"base_url": sims.codelocks.url, "api_key": ck.api_key,
                   "access_keys": list(ck.access_keys), "plan": ck.plan},
        jobs=jobs,
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
            return await _cycle(data_dir, sims, redactor, receiver, hook.url + "/syncd",
                                keep=getattr(args, "keep", False))
    finally:
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _serve(settings: Settings, redactor: Redactor) -> tuple[web.Application, web.AppRunner]:
    """syncd's app listening on both of its listeners, as `syncd run` serves it."""
    app = create_app(settings, redactor)
    runner = web_server.app_runner(app, settings.server)
    await runner.setup()
    try:
        await web_server.site(runner, settings.server).start()
        await web_server.admin_site(runner, settings.admin).start()
    except BaseException:
        await runner.cleanup()
        raise
    return app, runner


async def _cycle(data_dir: Path, sims: Simulators, redactor: Redactor, receiver: AlertReceiver,
                 hook_url: str, *, keep: bool = False) -> int:
    port, admin_port = _free_port(), _free_port()
    hook = {"url": hook_url, "secret": receiver.secret, "name": "demo-receiver"}
    settings = _settings(data_dir, port, admin_port, sims, hook)
    started = time.monotonic()
    app, runner = await _serve(settings, redactor)
    console = f"http://127.0.0.1:{admin_port}/ui/"
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
        for name in CYCLE_JOBS:
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
            registered = 0
            for device in APP_DEVICES:  # the business's apps register their devices
                reply = await session.post(f"http://127.0.0.1:{port}/v2/device", json=device)
                registered += reply.status == 200
            ready = await session.get(f"http://127.0.0.1:{port}/readyz")
            status = await (await session.get(
                f"http://127.0.0.1:{admin_port}/api/v1/status")).json()
            page = await session.get(console)
        print(f"  app registry: {registered} of {len(APP_DEVICES)} devices registered")
        print(f"  /readyz {ready.status}; failing jobs: {status['failing_jobs'] or 'none'}")
        failures += ready.status != 200 or page.status != 200 or registered != len(APP_DEVICES)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    print("demo OK" if failures == 0 else f"demo finished with {failures} problem(s)")
    if not keep:
        print(f"console: {console} (stopped with the demo: `syncd demo --keep` leaves it "
              "browsable)")
        return 0 if failures == 0 else 1
    # syncd goes on as `syncd run` would, on the same ports and database, its scheduler on.
    kept = _settings(data_dir, port, admin_port, sims, hook, scheduled=True)
    _, runner = await _serve(kept, redactor)
    try:
        print(f"console: {console} (syncd runs every job every {KEEP_EVERY:g} s; Ctrl-C to "
              "stop)", flush=True)
        await _until_stopped()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
    print("demo stopped")
    return 0 if failures == 0 else 1


async def _until_stopped() -> None:
    """Wait for SIGINT (Ctrl-C) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    own = threading.current_thread() is threading.main_thread()  # only it receives signals
    if own:
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if own:
            for sig in signals:
                loop.remove_signal_handler(sig)


async def _locked(db: Any, uids: list[str]) -> bool:
    return await demo_db.locked_count(db, uids) == len(uids)

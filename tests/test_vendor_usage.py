"""Every vendor request is counted once, against the unit of work that sent it.

Two NeoLock jobs and the inbox worker share one client (one token, one pacer) and run at the same
time; the requests each run and the worker counted, by route, add up exactly to what the
simulator itself saw on each route, and each run's ops.sync_runs row holds its own count.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from syncd.db.pool import Database
from syncd.devtools.simulators import neolock as neosim
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.errors import VendorNotFound
from syncd.inbox.worker import InboxWorker
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.jobs.runner import JobRunner, Outcome
from syncd.metrics import Metrics
from syncd.sync.neolock import NeoLockDevicesJob, NeoLockUploadsJob
from syncd.vendors import usage
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.usage import Usage


@pytest.fixture
async def sim() -> AsyncIterator[tuple[neosim.NeoLockSim, Running]]:
    """A NeoLock simulator with 120 devices, all uploaded."""
    state = neosim.NeoLockSim(seed=11, devices=120)
    async with serve(neosim.create_app(state), prefix=neosim.BASE_PATH) as running:
        yield state, running


def sim_routes(running: Running) -> collections.Counter[str]:
    """Requests the simulator saw, by its route template."""
    return collections.Counter({route: c.requests for route, c in running.counters.routes.items()
                                if c.requests})


def our_routes(*usages: Usage) -> collections.Counter[str]:
    """Requests syncd counted, summed over units of work, by route template."""
    total: collections.Counter[str] = collections.Counter()
    for one in usages:
        for (vendor, route), n in one.by_route.items():
            assert vendor == "neolock"
            total[route] += n
    return total


async def test_concurrent_runs_and_the_inbox_worker_each_count_exactly_their_own_requests(
        db: Database, sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """Uploads job, devices job and inbox worker at once on one client (5xx retries and the token
    call included): per route, their counts add up to the simulator's, and each run's
    ops.sync_runs.requests is its own count."""
    state, running = sim
    runner = JobRunner(db)
    async with aiohttp.ClientSession() as session:
        warmup = NeoLockClient(session, running.url, state.login, state.password)
        assert (await runner.run(NeoLockUploadsJob(db, warmup, page_size=10))).outcome is Outcome.OK
        uids = sorted(state.devices)
        committer = GroupCommitter(db)
        for uid in uids[:40]:
            assert await committer.submit(InboxItem(
                "neolock", f"id:{uid}", None, None, json.dumps({"deviceUid": uid})))
        running.counters.reset()
        running.faults.set("/api/clients/devices/{deviceUid}", FaultSpec(error_rate=0.1))
        client = NeoLockClient(session, running.url, state.login, state.password, rate=None)
        worker = InboxWorker(db, client)
        uploads, devices, _ = await asyncio.gather(
            runner.run(NeoLockUploadsJob(db, client, page_size=10)),
            runner.run(NeoLockDevicesJob(db, client, batch=25)),
            worker.process_due())
    assert uploads.usage is not None and devices.usage is not None
    assert our_routes(uploads.usage, devices.usage, worker.usage) == sim_routes(running)
    assert running.counters["/api/clients/devices/{deviceUid}"].faults > 0  # retries happened
    assert running.counters["/api/clients/token"].requests == 1  # one token, shared, counted once
    assert set(our_routes(uploads.usage)) <= {"/api/clients/devices/uploads", "/api/clients/token"}
    assert set(our_routes(worker.usage)) <= {"/api/clients/devices/{deviceUid}",
                                             "/api/clients/token"}
    for result in (uploads, devices):
        assert result.usage is not None
        assert result.requests == result.usage.requests == sum(result.usage.by_route.values())
        async with db.connection() as conn:
            stored = await conn.fetchval("SELECT requests FROM report.sync_runs WHERE job = $1 "
                                         "ORDER BY started_at DESC LIMIT 1", result.job)
        assert stored == result.requests


async def test_vendor_requests_are_exported_by_route_template_and_outcome(
        sim: tuple[neosim.NeoLockSim, Running]) -> None:
    """syncd_vendor_requests_total counts each attempt under its route template (never a path
    holding a device id) and its outcome: here one token call and one 404."""
    state, running = sim
    metrics = Metrics()
    trace = usage.trace_config(metrics.vendor_request)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = NeoLockClient(session, running.url, state.login, state.password)
        with pytest.raises(VendorNotFound):
            await client.get_device("R58N123UNKNOWN")
    text = metrics.render().decode()
    found = sorted(re.findall(r"^syncd_vendor_requests_total\{(.*)\} (\S+)$", text, re.M))
    assert found == [
        ('outcome="2xx",route="/api/clients/token",vendor="neolock"', "1.0"),
        ('outcome="4xx",route="/api/clients/devices/{deviceUid}",vendor="neolock"', "1.0"),
    ]
    assert "R58N123UNKNOWN" not in text


def test_route_templates_hide_ids_and_keep_versions() -> None:
    """Path segments holding digits, long tokens or escapes become {id}; API versions stay."""
    assert usage.route_template("/kcs/v1.1/kg/devices/358240051111110") == \
        "/kcs/v1.1/kg/devices/{id}"
    assert usage.route_template("/iclock/api/terminals/12/") == "/iclock/api/terminals/{id}/"
    assert usage.route_template("/hooks/" + "a" * 30) == "/hooks/{id}"
    assert usage.route_template("/clients/devices/uploads") == "/clients/devices/uploads"

"""The daemon on the smallest pool, every vendor configured and answering late: nothing stalls.

Issue 19, first table rows: with `pool_max_size = 3` (or slow vendors on the default pool) job
runs took every pooled connection, so jobs hung "running", the NeoLock subscription was never
registered, /readyz answered 503 and POST /v2/device 503 after 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from syncd.app import create_app
from syncd.db import ops
from syncd.devtools.simulators.common import FaultSpec
from syncd.devtools.simulators.runner import run_all
from syncd.errors import ConfigError, PoolExhausted
from syncd.jobs import catalog
from syncd.settings.core import Settings, load
from syncd.web import keys
from syncd.web import server as web_server
from tests.conftest import free_port
from tests.served import ServeSyncd

LATENCY = 0.5  # seconds every simulated vendor waits before answering
REGISTRATION = {"device_os": "iOS", "device_version": "14.5", "device_type": "Mobile",
                "app_version": "2.0", "app_name": "MyApp"}


async def test_slow_vendors_on_a_pool_of_four_stall_no_job_and_no_request(
        make_settings: Callable[..., Settings]) -> None:
    """All four vendors answering 0.5 s late, database.pool_max_size = 4: every scheduled job
    finishes a run, the NeoLock subscription is registered, and meanwhile every /readyz probe
    answers 200 and every POST /v2/device is stored (each within a 5 s client timeout, below
    which a starved pool would have answered 503)."""
    port = free_port()
    async with run_all(seed=5, devices=10, locks=4, terminals=4) as sims:
        for served in (sims.neolock, sims.knoxguard, sims.codelocks, sims.biotime):
            served.running.faults.set("*", FaultSpec(latency=LATENCY))
        settings = make_settings(
            database={"pool_max_size": 4},
            server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
            neolock={"base_url": sims.neolock.url, "login": sims.neolock.sim.login,
                     "password": sims.neolock.sim.password},
            knoxguard={"base_url": sims.knoxguard.url,
                       "api_token": sims.knoxguard.sim.api_token},
            codelocks={"base_url": sims.codelocks.url, "api_key": sims.codelocks.sim.api_key,
                       "access_keys": list(sims.codelocks.sim.access_keys),
                       "plan": sims.codelocks.sim.plan},
            biotime={"base_url": sims.biotime.url, "username": sims.biotime.sim.username,
                     "password": sims.biotime.sim.password,
                     "timezone": sims.biotime.sim.timezone},
            # every job starts within a second of start-up, as a dozen do in production
            jobs={spec.name: {"jitter_seconds": 1.0} for spec in catalog.JOBS})
        scheduled = sorted(name for name, every in catalog.schedule(settings).items() if every)
        assert len(scheduled) == 12
        app = create_app(settings)
        runner = web_server.app_runner(app, settings.server)
        await runner.setup()
        site = web_server.site(runner, settings.server)
        await site.start()
        ready: list[int] = []
        registered: list[int] = []
        finished: set[str] = set()
        subscription = None
        try:
            db = app[keys.DB]
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 80  # under pytest-timeout's 120 s
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                while time.monotonic() < deadline:
                    async with http.get(base + "/readyz") as resp:
                        ready.append(resp.status)
                    mac = f"A1B2C3D4{len(registered):04X}"
                    async with http.post(base + "/v2/device",
                                         json={"mac_address": mac, **REGISTRATION}) as resp:
                        registered.append(resp.status)
                    finished = {job for job, run in (await ops.latest_runs(db)).items()
                                if run.get("finished_at") is not None}
                    subscription = await ops.get_subscription(db, "neolock")
                    if finished >= set(scheduled) and subscription is not None and \
                            subscription.status == "registered":
                        break
                    await asyncio.sleep(0.2)
            metrics = app[keys.METRICS].render().decode()
        finally:
            await runner.cleanup()
    assert sorted(finished & set(scheduled)) == scheduled
    assert subscription is not None and subscription.status == "registered"
    assert ready and set(ready) == {200}
    assert registered and set(registered) == {200}
    assert 'syncd_db_pool_size{pool="requests"} 2.0' in metrics
    assert 'syncd_db_pool_size{pool="jobs"} 2.0' in metrics
    assert 'syncd_db_acquire_timeouts_total{pool="requests"} 0.0' in metrics


def test_check_config_refuses_a_pool_smaller_than_four_and_says_why(tmp_path: Path) -> None:
    """database.pool_max_size = 3 is a configuration error naming the floor and the reason;
    4 is accepted."""
    config = tmp_path / "syncd.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[database]\npool_max_size = 3\n')
    with pytest.raises(ConfigError) as refused:
        load(config)
    assert refused.value.problems == [
        "database.pool_max_size: must be at least 4: half the pool (rounded down) serves job "
        "runs and the rest the request paths (intake, registry, inbox, alerts, health), and "
        "each half needs 2 connections so that neither can stall the other (got 3)"]
    config.write_text(f'data_dir = "{tmp_path}"\n[database]\npool_max_size = 4\n')
    assert load(config).database.pool_max_size == 4


async def test_request_paths_answer_while_every_job_connection_is_taken(
        serve_syncd: ServeSyncd) -> None:
    """With every connection of the jobs pool lent out (as runs stuck in long statements would
    hold them), a push is stored, a registration answered and /readyz is 200: the request paths
    have a pool of their own. One more job acquire fails naming the jobs pool."""
    secret = "no-stall-test-hook-secret-0123456789"
    async with serve_syncd(secret) as served:
        jobs_db = served.app[keys.JOBS_DB]
        base = f"http://127.0.0.1:{served.port}"
        async with contextlib.AsyncExitStack() as taken, \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for _ in range(jobs_db.max_size):
                await taken.enter_async_context(jobs_db.connection())
            assert jobs_db.stats().in_use == jobs_db.max_size == 5
            async with http.post(f"{base}/hooks/neolock/{secret}",
                                 json={"id": "starve-1", "deviceUid": "u1"}) as resp:
                pushed = resp.status
            async with http.post(base + "/v2/device",
                                 json={"mac_address": "A1B2C3D4E5F6", **REGISTRATION}) as resp:
                registered = resp.status
            async with http.get(base + "/readyz") as resp:
                ready = resp.status
            with pytest.raises(PoolExhausted, match="no connection free in the jobs pool"):
                async with jobs_db.connection(timeout=0.1):
                    pass
    assert (pushed, registered, ready) == (200, 200, 200)

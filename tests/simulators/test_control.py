"""The simulators' control routes that drills use from another process
(syncd/devtools/simulators/control.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.runner import Simulators, control_app, run_all, vendor_sections


@contextlib.asynccontextmanager
async def controlled() -> AsyncIterator[tuple[Simulators, aiohttp.ClientSession]]:
    """The four simulators, their control app, and a client session on the control URL."""
    async with run_all(seed=3, devices=4, locks=2, terminals=2) as sims, \
            serve(control_app(sims)) as control, \
            aiohttp.ClientSession(base_url=control.url) as http:
        yield sims, http


async def test_vendors_gives_the_config_sections() -> None:
    """GET /vendors answers the four vendor sections a syncd config needs, as JSON."""
    async with controlled() as (sims, http), http.get("/vendors") as resp:
        assert resp.status == 200
        assert await resp.json() == vendor_sections(sims)


async def test_a_throttle_fault_answers_429_with_retry_after_until_cleared() -> None:
    """PUT /faults/{vendor} with throttle_rate 1 makes every route answer 429 + Retry-After
    (counted as rate-limited); DELETE /faults/{vendor} ends it."""
    async with controlled() as (sims, http):
        async with http.put("/faults/biotime", json={"throttle_rate": 1.0, "retry_after": 7}) as resp:
            assert resp.status == 200
        login = {"username": sims.biotime.sim.username, "password": sims.biotime.sim.password}
        async with aiohttp.ClientSession() as vendor:
            async with vendor.post(sims.biotime.url + "/jwt-api-token-auth/", json=login) as resp:
                assert (resp.status, resp.headers["Retry-After"]) == (429, "7")
            async with http.get("/counters/biotime") as resp:
                counted = await resp.json()
            assert counted["/jwt-api-token-auth/"]["rate_limited"] == 1
            async with http.delete("/faults/biotime") as resp:
                assert resp.status == 200
            async with vendor.post(sims.biotime.url + "/jwt-api-token-auth/", json=login) as resp:
                assert resp.status == 200


async def test_an_unknown_fault_field_or_vendor_is_refused() -> None:
    """A fault with a field FaultSpec lacks is a 400; an unknown vendor a 404."""
    async with controlled() as (_, http):
        async with http.put("/faults/neolock", json={"error_rat": 0.5}) as resp:
            assert resp.status == 400
        async with http.put("/faults/acme", json={"latency": 1}) as resp:
            assert resp.status == 404


async def test_events_are_push_bodies_with_fresh_ids_not_delivered() -> None:
    """POST /neolock/events?count=N returns N NeoLock push bodies (distinct ids, fleet devices)
    without queueing any delivery."""
    async with controlled() as (sims, http), http.post("/neolock/events",
                                                       params={"count": "6"}) as resp:
        bodies = await resp.json()
    assert len(bodies) == 6 and len({b["id"] for b in bodies}) == 6
    assert {b["deviceUid"] for b in bodies} == set(sims.neolock.sim.devices)
    assert not sims.neolock.sim.deliveries


async def test_exhausting_the_codelocks_quota_refuses_the_next_call() -> None:
    """POST /codelocks/quota/utility/exhaust uses the month's quota up at the vendor: the next
    utility call is a 429, which GET /codelocks/quota/utility counts as refused."""
    async with controlled() as (sims, http):
        async with http.post("/codelocks/quota/utility/exhaust") as resp:
            state = await resp.json()
        assert state["used"] == state["limit"] > 0 and state["refused_requests"] == 0
        async with aiohttp.ClientSession() as vendor, vendor.get(
                sims.codelocks.url + "/u/1/k3connect",
                params={"accesskey": sims.codelocks.sim.access_keys[0]},
                headers={"x-api-key": sims.codelocks.sim.api_key}) as resp:
            assert resp.status == 429
        async with http.get("/codelocks/quota/utility") as resp:
            after = await resp.json()
        assert (after["refused"], after["refused_requests"], after["billed_requests"]) == (1, 1, 0)

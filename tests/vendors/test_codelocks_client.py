"""CodelocksClient against the Codelocks Connect simulator over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.devtools.simulators.codelocks import NETCODE, UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorFault,
    VendorNotFound,
)
from syncd.vendors.codelocks import CodelocksClient
from syncd.vendors.pacing import RetryPolicy
from tests.clocks import Clock

FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.002)
NOW = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)
AUDIT_ROUTE = "/u/1/k3connect/{id}/audit"


@pytest.fixture
def sim() -> CodelocksSim:
    """A seeded tenant with 6 locks on two accounts and a fixed clock."""
    return CodelocksSim(seed=7, locks=6, now=Clock(NOW).now)


@pytest.fixture
async def running(sim: CodelocksSim) -> AsyncIterator[Running]:
    """The simulator served on loopback."""
    async with serve(create_app(sim)) as served:
        yield served


@pytest.fixture
async def client(sim: CodelocksSim, running: Running) -> AsyncIterator[CodelocksClient]:
    """A client with the simulator's API key, no pacing, fast retries, counting categories."""
    async with aiohttp.ClientSession() as session:
        calls: list[str] = []

        async def count(category: str) -> None:
            calls.append(category)

        made = CodelocksClient(session, running.url, sim.api_key, rate=None, retry=FAST,
                               before_call=count)
        made.calls = calls  # type: ignore[attr-defined]
        yield made


async def test_locks_list_and_detail_are_typed_with_extra_fields_kept(
        client: CodelocksClient, sim: CodelocksSim) -> None:
    """The lock list and detail parse into K3Lock; undocumented fields survive as extras."""
    key = sim.access_keys[0]
    locks = await client.locks(key)
    assert [lk.lock_id for lk in locks] == [lk.lock_id for lk in sim.locks_of(key)]
    detail = await client.lock(key, locks[0].lock_id)
    assert detail.lock_location is not None  # the detail always carries LockLocation
    assert detail.firmware_version == sim.locks[locks[0].lock_id].firmware
    assert isinstance(detail.battery_updated, dt.datetime)
    extras = {name for lk in locks for name in (lk.model_extra or {})}
    assert extras & {"LockDescription", "UtcBased", "LockLocation"}


async def test_every_utility_call_is_counted_as_utility_and_netcode_as_netcode(
        client: CodelocksClient, sim: CodelocksSim) -> None:
    """before_call sees the category of each call, matching the simulator's own quota counts."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    await client.account(key)
    await client.clients(key, lock_id)
    await client.audit(key, lock_id, per_page=5)
    await client.durations("KL1060")
    await client.modes("KL1060")
    await client.duration(3, "KL1060")
    await client.init("KL1060", timezone="Europe/London", random_id=True)
    await client.active_periods_help()
    code = await client.k3_netcode(lock_id, "2025-03-15 00:00", 12, key)
    kit = await client.kitlock_netcode("202011161623", "2025-03-14 16:00", 4, "KL1060C2", "451254")
    assert len(code.code) == 7 and kit.code.isdigit()
    assert client.calls.count(UTILITY) == sim.quota_used(UTILITY) == 8  # type: ignore[attr-defined]
    assert client.calls.count(NETCODE) == sim.quota_used(NETCODE) == 2  # type: ignore[attr-defined]


async def test_client_add_update_suspend_restore_delete(client: CodelocksClient,
                                                        sim: CodelocksSim) -> None:
    """Each client call is sent as a form and changes the simulator's client as documented."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    sim.register_user("new.staff@example.com")
    periods = {"0": {"enabled": True, "starts": "08:00", "ends": "18:00", "mon": True}}
    await client.add_client(key, lock_id, "new.staff@example.com", periods, "STANDARD", "Welcome")
    assert sim.clients[lock_id]["new.staff@example.com"].status == "PENDING"
    await client.update_client(key, lock_id, "new.staff@example.com", {"0": {"enabled": False}})
    assert sim.clients[lock_id]["new.staff@example.com"].active_periods == {"0": {"enabled": False}}
    await client.suspend_client(key, lock_id, "new.staff@example.com")
    assert sim.clients[lock_id]["new.staff@example.com"].status == "SUSPENDED"
    await client.suspend_client(key, lock_id, "new.staff@example.com", suspend=False)
    assert sim.clients[lock_id]["new.staff@example.com"].status == "ACTIVE"
    result = await client.delete_client(key, lock_id, "new.staff@example.com")
    assert result.email == "new.staff@example.com"
    assert "new.staff@example.com" not in sim.clients[lock_id]


async def test_error_shape_error_and_message_in_200(client: CodelocksClient,
                                                    sim: CodelocksSim) -> None:
    """A 200 {"error", "message"} body is an error: an unregistered client is a bad request."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    with pytest.raises(VendorBadRequest, match="ClientNotRegistered"):
        await client.add_client(key, lock_id, "nobody@example.com", {"0": {"enabled": True}})


async def test_error_shape_status_error_in_200(client: CodelocksClient, sim: CodelocksSim) -> None:
    """A 200 {"status": "error"} body is an error (here: the client does not exist)."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    with pytest.raises(VendorNotFound, match="Client not found"):
        await client.delete_client(key, lock_id, "ghost@example.com")


async def test_error_shape_netcode_error_in_200(client: CodelocksClient, sim: CodelocksSim) -> None:
    """A 200 {"netcode": "ERROR", "status": "ok"} body is an error, not a code."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    with pytest.raises(VendorBadRequest, match="refused to generate a NetCode"):
        await client.k3_netcode(lock_id, "2025-03-15 10:00", 12, key)  # a day code at 10:00


async def test_unknown_access_key_is_an_auth_error_that_never_names_the_key(
        client: CodelocksClient) -> None:
    """An access key the vendor does not know is VendorAuthError; the key is not in the message."""
    with capture_logs() as logs, pytest.raises(VendorAuthError) as info:
        await client.locks("zz9secretz")
    assert "zz9secretz" not in str(info.value)
    assert "zz9secretz" not in repr(logs)


async def test_bad_api_key_is_403_auth_error(sim: CodelocksSim, running: Running) -> None:
    """A wrong x-api-key is VendorAuthError and the key never appears in the message."""
    async with aiohttp.ClientSession() as session:
        bad = CodelocksClient(session, running.url, "sim-ck-wrongkey123", rate=None, retry=FAST)
        with pytest.raises(VendorAuthError) as info:
            await bad.locks(sim.access_keys[0])
    assert "sim-ck-wrongkey123" not in str(info.value)
    assert sim.access_keys[0] not in str(info.value)


async def test_unknown_lock_detail_is_not_found(client: CodelocksClient, sim: CodelocksSim) -> None:
    """GET of a lock not on the account answers 404 "No lock found.": VendorNotFound."""
    with pytest.raises(VendorNotFound):
        await client.lock(sim.access_keys[0], "0605deadbeef")


async def test_5xx_is_retried_and_every_attempt_counted(client: CodelocksClient, sim: CodelocksSim,
                                                        running: Running) -> None:
    """A GET answering 500 is retried; before_call sees every attempt, as the quota does."""
    key = sim.access_keys[0]
    lock_id = sim.locks_of(key)[0].lock_id
    running.faults.set(AUDIT_ROUTE, FaultSpec(error_rate=1.0))
    with pytest.raises(VendorFault):
        await client.audit(key, lock_id)
    assert client.calls == [UTILITY] * 3  # type: ignore[attr-defined]
    assert sim.quota_used(UTILITY) == 3


async def test_a_refusing_hook_stops_the_call_before_it_is_sent(sim: CodelocksSim,
                                                                running: Running) -> None:
    """When before_call raises, nothing reaches the vendor and the error propagates."""

    async def refuse(category: str) -> None:
        raise VendorError("codelocks", f"no budget for {category}")

    async with aiohttp.ClientSession() as session:
        refused = CodelocksClient(session, running.url, sim.api_key, rate=None, before_call=refuse)
        with pytest.raises(VendorError, match="no budget for utility"):
            await refused.locks(sim.access_keys[0])
    assert running.counters.requests == 0

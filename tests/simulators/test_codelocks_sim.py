"""The Codelocks Connect simulator, exercised over real HTTP as syncd's client would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from syncd.devtools.simulators.codelocks import NETCODE, UTILITY, CodelocksSim, create_app
from syncd.devtools.simulators.common import FaultSpec, Running, serve
from tests.clocks import FIXED, Clock

NOW = FIXED  # where the simulator's clock stands


class Env:
    """A served simulator and a session that sends its API key."""

    def __init__(self, sim: CodelocksSim, running: Running, http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.running = running
        self.http = http
        self.key = sim.access_keys[0]

    async def call(self, method: str, path: str, *, api_key: str | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        """Send a request; return the status and the decoded JSON body."""
        headers = {"x-api-key": self.sim.api_key if api_key is None else api_key}
        async with self.http.request(method, self.running.url + path, headers=headers,
                                     **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    def first_lock(self) -> str:
        """The id of the first lock of the first account."""
        return self.sim.locks_of(self.key)[0].lock_id


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A Codelocks simulator on loopback with a fixed clock."""
    sim = CodelocksSim(seed=7, locks=6, now=Clock(NOW).now)
    async with serve(create_app(sim)) as running, aiohttp.ClientSession() as http:
        yield Env(sim, running, http)


def netcode_params(**overrides: str) -> dict[str, str]:
    """Valid KitLock NetCode query parameters, with overrides."""
    params = {"start": "2025-03-14 16:00", "duration": "4", "lockmodel": "KL1060C2",
              "identifier": "451254"}
    params.update(overrides)
    return params


async def test_missing_or_wrong_api_key_is_403_and_not_counted(env: Env) -> None:
    """Without the right x-api-key every call answers 403 Forbidden and uses no quota."""
    assert await env.call("GET", "/u/1/k3connect", api_key="", params={"accesskey": env.key}) == (
        403, {"message": "Forbidden"})
    status, _ = await env.call("GET", "/n/1/netcode/202011161623", api_key="wrong",
                               params=netcode_params())
    assert status == 403
    assert env.sim.quota_used(UTILITY) == env.sim.quota_used(NETCODE) == 0


async def test_unknown_resource_answers_missing_authentication_token(env: Env) -> None:
    """An unknown path gets the API gateway's 403 "Missing Authentication Token"."""
    assert await env.call("GET", "/u/1/nothing-here") == (
        403, {"message": "Missing Authentication Token"})


async def test_lock_list_returns_only_the_accounts_locks_with_extra_fields(env: Env) -> None:
    """The lock list holds the access key's locks only, some with undocumented extra fields."""
    status, body = await env.call("GET", "/u/1/k3connect", params={"accesskey": env.key})
    assert status == 200
    assert [lock["LockId"] for lock in body] == [lk.lock_id for lk in env.sim.locks_of(env.key)]
    assert len(body) == 3
    assert {"LockId", "LockName", "BatteryStatus", "FirmwareVersion", "PairingDate"} <= set(body[0])
    all_locks = [lock.to_json() for lock in env.sim.locks.values()]
    assert any({"LockLocation", "LockDescription", "UtcBased"} & set(lock) for lock in all_locks)


async def test_lock_list_errors(env: Env) -> None:
    """A wrong access key is an error in a 200 body; a missing one is 404."""
    assert await env.call("GET", "/u/1/k3connect", params={"accesskey": "nope"}) == (
        200, {"error": "Unauthorized", "message": "Invalid access key"})
    status, body = await env.call("GET", "/u/1/k3connect")
    assert status == 404
    assert "accesskey" in body["message"]


async def test_get_lock_returns_detail_or_404(env: Env) -> None:
    """One lock comes with LockLocation; an unknown lock or another account's lock is 404."""
    status, body = await env.call("GET", f"/u/1/k3connect/{env.first_lock()}",
                                  params={"accesskey": env.key})
    assert status == 200
    assert body["LockId"] == env.first_lock()
    assert "LockLocation" in body
    other = env.sim.locks_of(env.sim.access_keys[1])[0].lock_id
    for lock_id in ("0000", other):
        assert await env.call("GET", f"/u/1/k3connect/{lock_id}",
                              params={"accesskey": env.key}) == (404, {"message": "No lock found."})


async def test_account_info_names_the_owner(env: Env) -> None:
    """Account info lists the account email and SPCCM status."""
    assert await env.call("GET", "/u/1/k3connect/account", params={"accesskey": env.key}) == (
        200, [{"email": env.sim.account_emails[env.key], "spccmstatus": "ACTIVE"}])


async def test_help_spcconfig_gives_sample_active_periods(env: Env) -> None:
    """The help endpoint returns active periods as a JSON string of ten slots."""
    status, body = await env.call("GET", "/u/1/k3connect/help/spcconfig")
    assert status == 200
    assert set(json.loads(body["activeperiods"])) == {str(i) for i in range(10)}


async def test_clients_list_pages_with_total_count(env: Env) -> None:
    """Clients are paged by page/perpage and carry the lock's total count."""
    lock_id = next(lid for lid, c in env.sim.clients.items()
                   if len(c) >= 2 and env.sim.locks[lid].access_key == env.key)
    total = len(env.sim.clients[lock_id])
    path = f"/u/1/k3connect/{lock_id}/clients"
    status, body = await env.call("GET", path, params={"accesskey": env.key, "page": "2",
                                                      "perpage": "1"})
    assert status == 200
    assert body["count"] == total
    assert [c["email"] for c in body["clients"]] == [list(env.sim.clients[lock_id])[1]]
    assert body["clients"][0]["activeperiods"][0]["0"]["enabled"] is True
    assert (await env.call("GET", path, params={"accesskey": env.key, "page": "1"}))[0] == 404
    assert (await env.call("GET", path, params={"accesskey": env.key, "page": "x",
                                                "perpage": "5"}))[0] == 400


async def test_clients_of_unknown_lock_is_an_error_body(env: Env) -> None:
    """Asking for clients of a lock not on the account answers 200 with an error body."""
    status, body = await env.call("GET", "/u/1/k3connect/ffff/clients",
                                  params={"accesskey": env.key, "page": "1", "perpage": "5"})
    assert status == 200
    assert body["error"]
    assert body["message"] == "No lock found."


def client_form(env: Env, email: str, **overrides: str) -> dict[str, str]:
    """A valid add-client form."""
    form = {"accesskey": env.key, "clientemail": email, "accesstype": "STANDARD",
            "message": "Welcome to the shop.", "activeperiods": json.dumps({"0": {
                "enabled": True, "starts": "08:00", "ends": "18:00", "mon": True}})}
    form.update(overrides)
    return form


async def test_add_client_invites_a_registered_user(env: Env) -> None:
    """Adding a registered user creates a PENDING client; accepting makes it ACTIVE."""
    path = f"/u/1/k3connect/{env.first_lock()}/client"
    env.sim.register_user("new@example.com")
    assert await env.call("POST", path, data=client_form(env, "new@example.com")) == (
        200, {"result": "success"})
    client = env.sim.clients[env.first_lock()]["new@example.com"]
    assert (client.status, client.active_periods["0"]["starts"]) == ("PENDING", "08:00")
    env.sim.accept_invitation(env.first_lock(), "new@example.com")
    assert client.status == "ACTIVE"


async def test_add_client_errors(env: Env) -> None:
    """Unregistered or duplicate clients are 200 error bodies; bad fields 400; missing ones 404."""
    path = f"/u/1/k3connect/{env.first_lock()}/client"
    status, body = await env.call("POST", path, data=client_form(env, "ghost@example.com"))
    assert status == 200
    assert body["error"] == "ClientNotRegistered"
    env.sim.register_user("dup@example.com")
    await env.call("POST", path, data=client_form(env, "dup@example.com"))
    status, body = await env.call("POST", path, data=client_form(env, "dup@example.com"))
    assert (status, body["status"]) == (200, "error")
    for bad in ({"accesstype": "FOREVER"}, {"activeperiods": "{not json"},
                {"message": "semicolons; are not allowed"}):
        assert (await env.call("POST", path, data=client_form(env, "x@example.com", **bad)))[0] \
            == 400
    form = client_form(env, "x@example.com")
    del form["message"]
    assert (await env.call("POST", path, data=form))[0] == 404


async def test_update_client_replaces_active_periods(env: Env) -> None:
    """PUT replaces a client's active periods; an unknown client is a status=error body."""
    lock_id = env.first_lock()
    env.sim.register_user("u@example.com")
    path = f"/u/1/k3connect/{lock_id}/client"
    await env.call("POST", path, data=client_form(env, "u@example.com"))
    periods = json.dumps({"0": {"enabled": True, "starts": "09:00", "ends": "17:00"}})
    form = {"accesskey": env.key, "clientemail": "u@example.com", "activeperiods": periods}
    assert await env.call("PUT", path, data=form) == (
        200, {"result": "success", "lockid": lock_id, "email": "u@example.com"})
    assert env.sim.clients[lock_id]["u@example.com"].active_periods["0"]["starts"] == "09:00"
    status, body = await env.call("PUT", path, data={**form, "clientemail": "no@example.com"})
    assert (status, body["status"]) == (200, "error")


async def test_suspend_and_restore_client(env: Env) -> None:
    """PATCH with SUSPEND then RESTORE flips the client's status; other actions are 400."""
    lock_id = env.first_lock()
    env.sim.register_user("s@example.com")
    path = f"/u/1/k3connect/{lock_id}/client"
    await env.call("POST", path, data=client_form(env, "s@example.com"))
    form = {"accesskey": env.key, "clientemail": "s@example.com"}
    assert (await env.call("PATCH", path, data={**form, "action": "SUSPEND"}))[0] == 200
    assert env.sim.clients[lock_id]["s@example.com"].status == "SUSPENDED"
    await env.call("PATCH", path, data={**form, "action": "RESTORE"})
    assert env.sim.clients[lock_id]["s@example.com"].status == "ACTIVE"
    assert (await env.call("PATCH", path, data={**form, "action": "BAN"}))[0] == 400


async def test_delete_client_reads_the_form_body_of_a_delete(env: Env) -> None:
    """DELETE with a form body removes the client; deleting again is a status=error body."""
    lock_id = env.first_lock()
    env.sim.register_user("d@example.com")
    path = f"/u/1/k3connect/{lock_id}/client"
    await env.call("POST", path, data=client_form(env, "d@example.com"))
    form = {"accesskey": env.key, "clientemail": "d@example.com"}
    assert (await env.call("DELETE", path, data=form))[1]["result"] == "success"
    assert "d@example.com" not in env.sim.clients[lock_id]
    status, body = await env.call("DELETE", path, data=form)
    assert (status, body["status"]) == (200, "error")


async def test_audit_pages_in_both_orders(env: Env) -> None:
    """Audit pages by page/perpage in ascending or descending order; bad or missing order fails."""
    lock_id = env.first_lock()
    path = f"/u/1/k3connect/{lock_id}/audit"
    base = {"accesskey": env.key, "perpage": "5"}
    _, asc = await env.call("GET", path, params={**base, "page": "1", "pageorder": "ascending"})
    _, desc = await env.call("GET", path, params={**base, "page": "1", "pageorder": "descending"})
    assert len(asc) == len(desc) == 5
    assert asc[0]["DateEntered"] <= asc[-1]["DateEntered"]
    assert desc[0]["DateEntered"] >= desc[-1]["DateEntered"]
    assert {"AuditEntryID", "LockID", "DateEntered", "EntryType", "EntryText"} == set(asc[0])
    _, beyond = await env.call("GET", path, params={**base, "page": "99", "pageorder": "asc"})
    assert beyond == []
    assert (await env.call("GET", path, params={**base, "page": "1"}))[0] == 404
    assert (await env.call("GET", path, params={**base, "page": "1", "pageorder": "up"}))[0] == 400


async def test_late_audit_entry_has_new_id_but_older_date(env: Env) -> None:
    """A late entry gets the highest AuditEntryID yet an old DateEntered, so it sorts mid-list."""
    lock_id = env.first_lock()
    newest_id = max(e.entry_id for entries in env.sim.audit.values() for e in entries)
    late = env.sim.add_late_audit_entry(lock_id, age=timedelta(days=2))
    params = {"accesskey": env.key, "page": "1", "perpage": "100", "pageorder": "descending"}
    _, entries = await env.call("GET", f"/u/1/k3connect/{lock_id}/audit", params=params)
    assert late.entry_id > newest_id
    position = [e["AuditEntryID"] for e in entries].index(late.entry_id)
    assert position > 0
    assert entries[position]["DateEntered"] == (NOW - timedelta(days=2)).strftime(
        "%Y-%m-%d %H:%M:%S")
    assert entries[0]["DateEntered"] > entries[position]["DateEntered"]


async def test_init_returns_a_utc_sequence(env: Env) -> None:
    """Init gives the sequence with the master code and UTC time; randomid=false uses 123456."""
    status, body = await env.call("GET", "/u/1/init", params={
        "lockmodel": "Kl1060", "mastercode": "12345678", "timezone": "Europe/London",
        "randomid": "false"})
    assert status == 200
    assert body["InitSeq"] == "#12345678#11#2503140930#123456#"
    assert body["TimeCode"] == "202503140930"
    for bad in ({"lockmodel": "K3CONNECT"}, {"timezone": "Mars/Base"}, {"mastercode": "12ab"}):
        assert (await env.call("GET", "/u/1/init", params=bad))[0] == 400


async def test_durations_and_modes(env: Env) -> None:
    """Durations lists ids 0-18 (hours then days); operation=MODES lists modes; others are 400."""
    status, body = await env.call("GET", "/u/1/durations", params={"lockmodel": "KL1060"})
    assert status == 200
    assert [d["DurationID"] for d in body] == list(range(19))
    assert (body[0]["DurationHours"], body[12]["DurationDays"]) == (1, 1)
    _, modes = await env.call("GET", "/u/1/durations", params={"operation": "MODES"})
    assert {m["SubMode"] for m in modes} == {"HOURS", "DAYS"}
    assert (await env.call("GET", "/u/1/durations", params={"operation": "x"}))[0] == 400


async def test_duration_detail(env: Env) -> None:
    """Duration 12 is one day starting at midnight; an unknown id is 400."""
    status, body = await env.call("GET", "/u/1/duration/12", params={"lockmodel": "KL1550"})
    assert status == 200
    assert body["Duration"] == [{"Days": 1, "Hours": 0}]
    assert body["Rules"][0]["RestrictedStartTime"] == "00:00"
    assert (await env.call("GET", "/u/1/duration/42"))[0] == 400


async def test_kitlock_netcodes_are_deterministic(env: Env) -> None:
    """The same parameters give the same NetCode; any change gives another."""
    path = "/n/1/netcode/202011161623"
    _, first = await env.call("GET", path, params=netcode_params())
    _, again = await env.call("GET", path, params=netcode_params())
    _, other = await env.call("GET", path, params=netcode_params(start="2025-03-14 17:00"))
    assert first == again
    assert first["ActualNetcode"].isdigit()
    assert len(first["ActualNetcode"]) == 7
    assert other["ActualNetcode"] != first["ActualNetcode"]
    assert (first["DurationHours"], first["Expires"]) == (5, "2025-03-14 21:00")
    fresh = CodelocksSim(seed=99)
    async with serve(create_app(fresh)) as running, env.http.get(
            running.url + path, params=netcode_params(),
            headers={"x-api-key": fresh.api_key}) as resp:
        assert (await resp.json())["ActualNetcode"] == first["ActualNetcode"]


async def test_netcode_errors(env: Env) -> None:
    """Missing parameters are 404, malformed ones 400, a start off the hour a netcode ERROR body."""
    path = "/n/1/netcode/202011161623"
    params = netcode_params()
    del params["start"]
    assert (await env.call("GET", path, params=params))[0] == 404
    for bad in ({"lockmodel": "KL9999"}, {"duration": "40"}, {"start": "tomorrow"}):
        assert (await env.call("GET", path, params=netcode_params(**bad)))[0] == 400
    assert await env.call("GET", path, params=netcode_params(start="2025-03-14 16:30")) == (
        200, {"netcode": "ERROR", "status": "ok"})
    assert await env.call("GET", path, params=netcode_params(
        start="2025-03-14 16:00", duration="13")) == (200, {"netcode": "ERROR", "status": "ok"})


async def test_k3_netcode_needs_the_locks_access_key(env: Env) -> None:
    """A K3Connect NetCode needs the lock's access key (either spelling); a rotated key fails."""
    lock_id = env.first_lock()
    params = netcode_params(lockmodel="K3CONNECT", identifier=env.key)
    status, body = await env.call("GET", f"/n/1/netcode/{lock_id}", params=params)
    assert status == 200
    assert body["LockId"] == lock_id
    misspelt = {k: v for k, v in params.items() if k != "identifier"} | {"identifer": env.key}
    assert (await env.call("GET", f"/n/1/netcode/{lock_id}", params=misspelt))[1] == body
    env.sim.rotate_access_key(env.key)
    assert await env.call("GET", f"/n/1/netcode/{lock_id}", params=params) == (
        200, {"netcode": "ERROR", "status": "ok"})


async def test_quota_refuses_once_exceeded_per_category(env: Env) -> None:
    """NetCode and Utility quotas are counted apart; past the limit calls get 429 Limit Exceeded."""
    assert env.sim.quota_limit(NETCODE) == 100
    env.sim.set_quota_used(NETCODE, 98)
    path = "/n/1/netcode/202011161623"
    statuses = [(await env.call("GET", path, params=netcode_params()))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert await env.call("GET", path, params=netcode_params()) == (
        429, {"message": "Limit Exceeded"})
    assert env.sim.quota_used(NETCODE) == 100
    assert env.sim.quota_refused(NETCODE) == 2
    status, _ = await env.call("GET", "/u/1/durations")
    assert status == 200
    assert env.sim.quota_used(UTILITY) == 1
    counters = env.running.counters["/n/1/netcode/{id}"]
    assert (counters.quota_used, counters.rate_limited) == (2, 2)


async def test_quota_counts_error_bodies_and_faults_and_resets_monthly(env: Env) -> None:
    """Calls answered with error bodies or injected 502s still count; a new month starts afresh."""
    await env.call("GET", "/u/1/k3connect", params={"accesskey": "wrong"})
    env.running.faults.set("/u/1/durations", FaultSpec(tertiary_rate=1.0))
    assert await env.call("GET", "/u/1/durations") == (502, {"message": "Tertiary endpoint error"})
    assert env.sim.quota_used(UTILITY) == 2
    env.sim.set_quota_used(UTILITY, 1000)
    assert (await env.call("GET", "/u/1/k3connect/help/spcconfig"))[0] == 429
    env.sim.add_bolt_on(UTILITY, 1)
    assert (await env.call("GET", "/u/1/k3connect/help/spcconfig"))[0] == 200
    env.sim.set_month("2025-04")
    assert env.sim.quota_used(UTILITY) == 0
    assert (await env.call("GET", "/u/1/k3connect/help/spcconfig"))[0] == 200

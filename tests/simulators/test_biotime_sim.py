"""The BioTime simulator, exercised over real HTTP as syncd's client would."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from syncd.devtools.simulators.biotime import BioTimeSim, create_app
from syncd.devtools.simulators.common import Running, serve
from tests.clocks import FIXED, Clock


class Env:
    """A served simulator, its clock, and a session authenticated with a JWT."""

    def __init__(self, sim: BioTimeSim, clock: Clock, running: Running,
                 http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.clock = clock
        self.running = running
        self.http = http
        self.auth = ""

    async def login(self, path: str = "/jwt-api-token-auth/", scheme: str = "JWT") -> str:
        """Obtain a token and use it from now on."""
        status, body = await self.call("POST", path, json={"username": self.sim.username,
                                                           "password": self.sim.password})
        assert status == 200
        self.auth = f"{scheme} {body['token']}"
        return str(body["token"])

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Send a request; return the status and the JSON body (None when there is none)."""
        headers = {"Authorization": self.auth} if self.auth else {}
        async with self.http.request(method, self.running.url + path, headers=headers,
                                     **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """A BioTime simulator on loopback with a hand-moved clock, logged in with a JWT."""
    clock = Clock(FIXED)
    sim = BioTimeSim(seed=3, terminals=10, now=clock.now)
    async with serve(create_app(sim)) as running, aiohttp.ClientSession() as http:
        e = Env(sim, clock, running, http)
        await e.login()
        yield e


async def list_all(env: Env, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Follow `next` links by their query string only, collecting every record."""
    records: list[dict[str, Any]] = []
    query: list[tuple[str, str]] = list(params.items())
    while True:
        status, body = await env.call("GET", path, params=query)
        assert (status, body["code"]) == (200, 0)
        records += body["data"]
        if body["next"] is None:
            return records
        query = parse_qsl(urlsplit(body["next"]).query)


async def test_jwt_carries_exp_after_the_configured_lifetime(env: Env) -> None:
    """The JWT is HS256 with `exp` = issue time + the sim's token lifetime."""
    env.sim.set_token_lifetime(120)
    token = await env.login()
    header, payload = (json.loads(base64.urlsafe_b64decode(part + "=="))
                       for part in token.split(".")[:2])
    assert header["alg"] == "HS256"
    assert payload["exp"] == int(env.clock.unix()) + 120
    assert (await env.call("GET", "/iclock/api/terminals/"))[0] == 200


async def test_expired_jwt_is_401(env: Env) -> None:
    """Once the clock passes `exp`, the JWT is refused with 401 "Signature has expired."."""
    env.clock.advance(seconds=env.sim.token_lifetime + 1)
    assert await env.call("GET", "/iclock/api/terminals/") == (
        401, {"detail": "Signature has expired."})


async def test_tampered_or_missing_credentials_are_401(env: Env) -> None:
    """A forged signature, a wrong Token or no Authorization header all answer 401."""
    env.auth = env.auth[:-3] + ("AAA" if not env.auth.endswith("AAA") else "BBB")
    assert (await env.call("GET", "/iclock/api/terminals/"))[1] == {
        "detail": "Error decoding signature."}
    env.auth = "Token 0000"
    assert (await env.call("GET", "/iclock/api/terminals/")) == (401, {"detail": "Invalid token."})
    env.auth = ""
    assert (await env.call("GET", "/iclock/api/terminals/"))[0] == 401


async def test_login_errors_are_400(env: Env) -> None:
    """Wrong credentials or missing fields at the token endpoints answer 400."""
    status, body = await env.call("POST", "/jwt-api-token-auth/",
                                  json={"username": "admin", "password": "nope"})
    assert (status, body) == (400, {"non_field_errors": [
        "Unable to log in with provided credentials."]})
    status, body = await env.call("POST", "/api-token-auth/", json={"username": "admin"})
    assert (status, body) == (400, {"password": ["This field is required."]})


async def test_drf_token_never_expires(env: Env) -> None:
    """The /api-token-auth/ token, sent as `Token <t>`, works whatever the clock says."""
    await env.login("/api-token-auth/", "Token")
    env.clock.advance(days=365)
    assert (await env.call("GET", "/iclock/api/terminals/"))[0] == 200


async def test_licence_gate_answers_403(env: Env) -> None:
    """With the licence gate closed, API views answer 403 while login still works."""
    env.sim.set_licensed(False)
    status, body = await env.call("GET", "/iclock/api/terminals/")
    assert status == 403
    assert body["code"] != 0
    await env.login()
    env.sim.set_licensed(True)
    assert (await env.call("GET", "/iclock/api/terminals/"))[0] == 200


async def test_terminal_pages_link_to_the_internal_host(env: Env) -> None:
    """next/previous carry the server's internal host; their query strings page through all."""
    status, body = await env.call("GET", "/iclock/api/terminals/", params={"page_size": "4"})
    assert status == 200
    assert (body["count"], len(body["data"]), body["previous"]) == (10, 4, None)
    assert body["next"] == "http://10.0.0.5:8081/iclock/api/terminals/?page_size=4&page=2"
    _, page3 = await env.call("GET", "/iclock/api/terminals/",
                              params={"page_size": "4", "page": "3"})
    assert page3["next"] is None
    assert page3["previous"].endswith("?page_size=4&page=2")
    _, page2 = await env.call("GET", "/iclock/api/terminals/",
                              params={"page_size": "4", "page": "2"})
    assert page2["previous"] == "http://10.0.0.5:8081/iclock/api/terminals/?page_size=4"
    everything = await list_all(env, "/iclock/api/terminals/", {"page_size": "3"})
    assert sorted(t["id"] for t in everything) == sorted(env.sim.terminals)


async def test_older_servers_page_with_limit(env: Env) -> None:
    """A legacy server ignores page_size and pages with page+limit; limit+offset also works."""
    env.sim.legacy_paging = True
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"page_size": "3"})
    assert len(body["data"]) == 10
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"limit": "3", "page": "2"})
    assert [t["id"] for t in body["data"]] == [4, 5, 6]
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"limit": "3",
                                                                      "offset": "3"})
    assert [t["id"] for t in body["data"]] == [4, 5, 6]
    assert body["next"].endswith("?limit=3&offset=6")
    assert body["previous"].endswith("?limit=3")


async def test_invalid_page_is_a_code_1_body(env: Env) -> None:
    """A page past the end answers 200 with code 1 and msg "Invalid page."."""
    status, body = await env.call("GET", "/iclock/api/terminals/", params={"page": "99"})
    assert (status, body["code"], body["msg"], body["data"]) == (200, 1, "Invalid page.", [])


async def test_terminal_filters(env: Env) -> None:
    """sn, state, area and *_icontains filter the list; a non-numeric state is a 400 error."""
    terminal = env.sim.known_terminals()[0]
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"sn": terminal.sn})
    assert [t["id"] for t in body["data"]] == [terminal.id]
    _, body = await env.call("GET", "/iclock/api/terminals/",
                             params={"sn_icontains": terminal.sn[-5:].lower()})
    assert terminal.id in [t["id"] for t in body["data"]]
    _, body = await env.call("GET", "/iclock/api/terminals/",
                             params={"alias_icontains": "auto", "area": "1"})
    assert {t["alias"] for t in body["data"]} == {"Auto add"}
    env.sim.set_offline(terminal.sn)
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"state": "2"})
    assert terminal.id in [t["id"] for t in body["data"]]
    status, body = await env.call("GET", "/iclock/api/terminals/", params={"state": "on"})
    assert (status, body["code"]) == (400, 1)


async def test_some_records_carry_numbers_as_strings(env: Env) -> None:
    """Some terminal records render state and other numbers as strings, e.g. "state": "1"."""
    records = await list_all(env, "/iclock/api/terminals/", {})
    kinds = {type(t["state"]) for t in records}
    assert kinds == {int, str}
    stringy = next(t for t in records if isinstance(t["state"], str))
    assert stringy["state"] in {"1", "2"}
    assert isinstance(stringy["terminal_tz"], str)


async def test_offline_online_and_local_times(env: Env) -> None:
    """Offline terminals show state 2 and a frozen last_activity; times are zone-less local."""
    terminal = env.sim.known_terminals()[1]
    env.sim.set_offline(terminal.sn, since=timedelta(hours=3))
    _, body = await env.call("GET", f"/iclock/api/terminals/{terminal.id}/")
    assert int(body["state"]) == 2
    # 09:30 UTC minus 3 hours, rendered in Asia/Tashkent (UTC+5) without a zone.
    assert body["last_activity"] == "2025-03-14 11:30:00"
    env.sim.set_online(terminal.sn)
    _, body = await env.call("GET", f"/iclock/api/terminals/{terminal.id}/")
    assert int(body["state"]) == 1
    assert body["last_activity"] >= "2025-03-14 14:28:00"


async def test_fleet_has_stale_and_unknown_terminals(env: Env) -> None:
    """The fleet mixes online, offline, stale and auto-added terminals unknown to the business."""
    sim = env.sim
    unknown = sim.unknown_terminals()
    assert unknown
    assert all(t.alias == "Auto add" and t.area_id == 1 for t in unknown)
    added = sim.add_unknown_terminal("ZZZZ000000001")
    _, body = await env.call("GET", "/iclock/api/terminals/", params={"sn": "ZZZZ000000001"})
    assert body["data"][0]["area_name"] == "Not Authorized"
    assert added not in sim.known_terminals()
    sim.set_stale(sim.known_terminals()[2].sn, since=timedelta(hours=5))
    _, body = await env.call("GET", f"/iclock/api/terminals/{sim.known_terminals()[2].id}/")
    assert int(body["state"]) == 1
    assert body["last_activity"] == "2025-03-14 09:30:00"


async def test_read_unknown_terminal_is_404(env: Env) -> None:
    """Reading a terminal id that does not exist answers 404."""
    assert await env.call("GET", "/iclock/api/terminals/999/") == (404, {"detail": "Not found."})


async def test_create_terminal(env: Env) -> None:
    """Create returns the new record (201); a duplicate sn or missing fields are 400 code 1."""
    body = {"sn": "111111111", "alias": "test device", "ip_address": "127.0.0.1",
            "terminal_tz": 8, "heartbeat": 10, "area": 2}
    status, created = await env.call("POST", "/iclock/api/terminals/", json=body)
    assert status == 201
    assert (created["sn"], created["area"]["id"], created["state"]) == ("111111111", 2, 1)
    status, error = await env.call("POST", "/iclock/api/terminals/", json=body)
    assert (status, error["code"]) == (400, 1)
    assert "sn" in error["data"]
    status, error = await env.call("POST", "/iclock/api/terminals/", json={"sn": "2"})
    assert (status, set(error["data"])) == (400, {"alias", "ip_address"})
    status, error = await env.call("POST", "/iclock/api/terminals/", json={**body, "sn": "3",
                                                                          "area": 77})
    assert (status, list(error["data"])) == (400, ["area"])


async def test_update_terminal_put_and_patch(env: Env) -> None:
    """PUT needs the full record, PATCH changes one field; both return the updated record."""
    terminal = env.sim.known_terminals()[0]
    path = f"/iclock/api/terminals/{terminal.id}/"
    status, body = await env.call("PUT", path, json={"sn": terminal.sn, "alias": "Renamed",
                                                     "ip_address": "10.1.1.1"})
    assert (status, body["alias"], body["ip_address"]) == (200, "Renamed", "10.1.1.1")
    status, body = await env.call("PATCH", path, json={"area": 3})
    assert (status, body["area"]["id"], body["alias"]) == (200, 3, "Renamed")
    assert (await env.call("PUT", path, json={"alias": "x"}))[0] == 400


async def test_delete_terminal(env: Env) -> None:
    """Delete answers 204 without a body; the terminal is then 404."""
    terminal_id = env.sim.known_terminals()[0].id
    path = f"/iclock/api/terminals/{terminal_id}/"
    assert await env.call("DELETE", path) == (204, None)
    assert (await env.call("GET", path))[0] == 404


@pytest.mark.parametrize("action", ["clear_command", "clear_capture", "clear_all", "upload_all",
                                    "upload_transaction", "reboot"])
async def test_actions_record_commands(env: Env, action: str) -> None:
    """Each action records one command per terminal, queued when the terminal is offline."""
    first, second = env.sim.known_terminals()[:2]
    env.sim.set_online(first.sn)
    env.sim.set_offline(second.sn)
    assert await env.call("POST", f"/iclock/api/terminals/{action}/",
                          json={"terminals": [first.id, second.id]}) == (
        200, {"code": 0, "msg": "", "data": None})
    assert [(c.action, c.sn, c.queued) for c in env.sim.commands] == [
        (action, first.sn, False), (action, second.sn, True)]
    assert env.sim.commands_for(first.sn)[0].issued_at == env.clock.now()


async def test_action_errors(env: Env) -> None:
    """Unknown terminal ids answer 200 with code 1 and record nothing; no list is 400."""
    status, body = await env.call("POST", "/iclock/api/terminals/reboot/",
                                  json={"terminals": [1, 999]})
    assert (status, body["code"]) == (200, 1)
    assert env.sim.commands == []
    status, body = await env.call("POST", "/iclock/api/terminals/reboot/", json={})
    assert (status, body["code"]) == (400, 1)


async def test_clear_all_zeroes_the_terminal_counts(env: Env) -> None:
    """clear_all wipes the terminal's users and punches, so its counts drop to 0."""
    terminal = env.sim.known_terminals()[0]
    await env.call("POST", "/iclock/api/terminals/clear_all/", json={"terminals": [terminal.id]})
    _, body = await env.call("GET", f"/iclock/api/terminals/{terminal.id}/")
    assert int(body["user_count"]) == int(body["transaction_count"]) == 0


async def test_transactions_page_and_filter(env: Env) -> None:
    """Punches are paged in id order and filter by terminal, employee, time and id__gt."""
    records = await list_all(env, "/iclock/api/transactions/", {"page_size": "20"})
    assert [t["id"] for t in records] == list(range(1, len(env.sim.transactions) + 1))
    sn = records[0]["terminal_sn"]
    _, body = await env.call("GET", "/iclock/api/transactions/", params={"terminal_sn": sn})
    assert body["count"] > 0
    assert {t["terminal_sn"] for t in body["data"]} == {sn}
    _, body = await env.call("GET", "/iclock/api/transactions/", params={"id__gt": "5",
                                                                        "page_size": "2"})
    assert [t["id"] for t in body["data"]] == [6, 7]
    _, body = await env.call("GET", "/iclock/api/transactions/", params={
        "start_time": "2025-03-14 00:00:00", "end_time": "2025-03-14 23:59:59"})
    assert all(t["punch_time"].startswith("2025-03-14") for t in body["data"])
    status, body = await env.call("GET", "/iclock/api/transactions/", params={"start_time": "x"})
    assert (status, body["code"]) == (400, 1)


async def test_late_uploads_get_new_ids_and_old_punch_times(env: Env) -> None:
    """Punches uploaded late come after every earlier id while their punch_time is old."""
    last_id = env.sim.transactions[-1].id
    sn = env.sim.known_terminals()[0].sn
    late = env.sim.upload_late(sn, count=2, age=timedelta(days=2))
    _, body = await env.call("GET", "/iclock/api/transactions/", params={"id__gt": str(last_id)})
    assert [t["id"] for t in body["data"]] == [t.id for t in late]
    newest_punch = max(t.punch_time for t in env.sim.transactions[:last_id])
    assert all(t.punch_time < newest_punch for t in late)
    assert body["data"][0]["upload_time"] == "2025-03-14 14:30:00"


async def test_unknown_path_is_an_html_page_with_200(env: Env) -> None:
    """Any unknown path, even under /iclock/api/, answers an HTML page with status 200."""
    for path in ("/no/such/page", "/iclock/api/nothing/"):
        async with env.http.get(env.running.url + path) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "<html" in await resp.text()


async def test_missing_trailing_slash_redirects(env: Env) -> None:
    """A known API path without its trailing slash is redirected (301) to the slashed path."""
    async with env.http.get(env.running.url + "/iclock/api/terminals?page=2",
                            allow_redirects=False) as resp:
        assert resp.status == 301
        assert resp.headers["Location"] == "/iclock/api/terminals/?page=2"

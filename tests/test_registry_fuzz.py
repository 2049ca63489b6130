"""Fuzz the registry routes from their own OpenAPI document: no 5xx, every answer as documented.

Requests are generated with hypothesis-jsonschema from the request schema in /openapi.json
(valid registrations, JSON or form-encoded, which must all be accepted), plus bodies that break
it (any JSON type in each field, arbitrary bytes under any content type). Each answer's status
must be one the document lists for the route and its body must validate against that status's
schema. The examples are bounded so the test takes seconds; the server is the real app on a
real socket.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from syncd.app import create_app
from syncd.registry.validate import FIELDS, PLACEHOLDER_MACS, normalise_mac
from syncd.settings.core import Settings
from syncd.settings.service import RegistrySettings

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], "asyncio.Future[Client]"]
EXAMPLES = 30  # per strategy: a few seconds in all (generating from the patterns is slow)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


class Checker:
    """Sends requests to a live server and checks each answer against the OpenAPI document."""

    def __init__(self, port: int, doc: dict[str, Any]) -> None:
        self.port = port
        self.doc = doc
        self.statuses: dict[int, int] = {}

    def operation(self, path: str, method: str) -> dict[str, Any]:
        """The documented operation."""
        return dict(self.doc["paths"][path][method])

    def send(self, path: str, method: str, body: bytes | None = None,
             content_type: str | None = None) -> int:
        """Send one request; assert the answer is documented, schema-valid and not a 5xx."""
        headers = {"Content-Type": content_type} if content_type is not None else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method=method.upper(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310  (http:// literal)
                status, raw = int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            status, raw = int(err.code), err.read()
        assert status < 500, (status, raw[:300], body[:300] if body else body)
        responses = self.operation(path, method)["responses"]
        assert str(status) in responses, f"undocumented status {status}: {raw[:300]!r}"
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        Draft202012Validator(schema).validate(json.loads(raw))
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status


def json_any() -> st.SearchStrategy[Any]:
    """Any JSON value, nested a little."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


def accepted(doc: dict[str, Any], body: bytes) -> int:
    """A body the schema allows is registered (200), unless its MAC is an OS placeholder (400)
    or extra properties made it larger than registry.max_body_bytes (413)."""
    if len(body) > RegistrySettings().max_body_bytes:
        return 413
    return 400 if normalise_mac(doc["mac_address"]) in PLACEHOLDER_MACS else 200


def fuzz(checker: Checker) -> None:
    """Run every strategy against the live server (called in a worker thread)."""
    body_schema = checker.operation("/v2/device", "post")["requestBody"]["content"][
        "application/json"]["schema"]

    @FUZZ
    @given(from_schema(body_schema), st.booleans())
    def valid(doc: dict[str, Any], as_form: bool) -> None:
        if as_form:
            pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()]
            body = urllib.parse.urlencode(pairs).encode()
            kind = "application/x-www-form-urlencoded"
        else:
            body, kind = json.dumps(doc).encode(), "application/json"
        status = checker.send("/v2/device", "post", body, kind)
        assert status == accepted(doc, body), body[:500]

    @FUZZ
    @given(st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, json_any())) | json_any())
    def mistyped_json(doc: Any) -> None:
        checker.send("/v2/device", "post", json.dumps(doc).encode(), "application/json")

    @FUZZ
    @given(st.binary(max_size=300), st.sampled_from(
        [None, "application/json", "application/x-www-form-urlencoded", "text/plain",
         "multipart/form-data; boundary=x", "multipart/form-data"]))
    def arbitrary_bytes(body: bytes, content_type: str | None) -> None:
        checker.send("/v2/device", "post", body, content_type)

    for test in (valid, mistyped_json, arbitrary_bytes):
        test()
    checker.send("/api/base/configs", "get")


async def test_fuzzing_the_registry_from_its_openapi_document_finds_no_5xx(
        make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> None:
    """Generated valid and invalid requests never get a 5xx or an undocumented answer."""
    limits = {"rate_limit_per_minute": 1e6, "rate_limit_burst": 100000}
    client = await aiohttp_client(create_app(make_settings(registry=limits)))
    doc = await (await client.get("/openapi.json")).json()
    assert client.port is not None
    checker = Checker(client.port, doc)
    await asyncio.to_thread(fuzz, checker)
    assert checker.statuses.get(200, 0) > 0 and checker.statuses.get(400, 0) > 0, checker.statuses

"""`/api/v1/status` and `syncd status --json` match the OpenAPI `Status` schema field for field:
validated with jsonschema (draft 2020-12, as OpenAPI 3.1 uses) against the schema closed to
undeclared properties, on a body where every section has data."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from syncd.cli.main import main
from tests import console_seed
from tests.served import ServeSyncd

SECRET = "status-hook-secret-0123456789abcdef"
TOKEN = "admin-token-0123456789abcdefghijklmnop"
CODELOCKS = {"base_url": "http://127.0.0.1:9", "api_key": "codelocks-api-key-secret-value-1",
             "access_keys": ["codelocks-access-key-secret-value-2"]}
JOBS_OFF = {name: {"enabled": False} for name in (
    "neolock-subscription", "neolock-uploads", "neolock-devices", "k3-locks", "k3-audit",
    "k3-clients", "reconcile")}


def closed(schema: Any) -> Any:
    """A copy of `schema` where every object that lists its properties allows no others, so a
    field the server returns but the document does not declare fails validation."""
    if isinstance(schema, dict):
        found = {k: closed(v) for k, v in schema.items()}
        if "properties" in found and "additionalProperties" not in found:
            found["additionalProperties"] = False
        return found
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def validator(doc: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of the Status schema of `doc`, its `#/components/...` references resolved in
    the document itself."""
    root = {"$ref": "#/components/schemas/Status",
            "components": closed(copy.deepcopy(doc["components"]))}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def problems(check: jsonschema.Draft202012Validator, body: Any) -> list[str]:
    """Where `body` breaks the schema, one line each."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in check.iter_errors(body)]


async def test_status_bodies_match_the_schema_field_for_field(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession, tmp_path: Path, db_dsn: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With runs, open drift, deliveries in every state (one dead acknowledged), a K3 quota
    ledger, pushes and a subscription, the live /api/v1/status body and `syncd status --json`
    both validate against the closed Status schema and fill every top-level field it declares;
    drift_open and alert_deliveries are lists of objects. A field the schema does not declare
    fails the same check."""
    sections = {"codelocks": CODELOCKS, "jobs": JOBS_OFF, "admin": {"token": TOKEN},
                "status": {"expect_daemon": False}}
    async with serve_syncd(SECRET, sections=sections) as served:
        db = served.app_db
        await console_seed.seed(db, dt.datetime.now(dt.UTC))
        async with db.connection() as conn:
            await conn.execute("UPDATE ops.alert_deliveries SET acked_at = now(), acked_by = "
                               "'cli:ops', ack_reason = 'seen' WHERE id = (SELECT min(id) FROM "
                               "ops.alert_deliveries WHERE status = 'dead')")
        admin = f"http://127.0.0.1:{served.admin_port}"
        async with session.get(f"{admin}/openapi.json") as resp:
            doc = await resp.json()
        async with session.get(f"{admin}/api/v1/status") as resp:
            assert resp.status == 200
            body = await resp.json()
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_dsn}"\n'
                       f'[status]\nexpect_daemon = false\n[codelocks]\n'
                       f'base_url = "{CODELOCKS["base_url"]}"\napi_key = "{CODELOCKS["api_key"]}"\n'
                       f'access_keys = ["{CODELOCKS["access_keys"][0]}"]\n')
        capsys.readouterr()
        await asyncio.to_thread(main, ["status", "--json", "--config", str(cfg)])
        from_cli = json.loads(capsys.readouterr().out)
    check = validator(doc)
    declared = set(doc["components"]["schemas"]["Status"]["properties"])
    for name, found in (("/api/v1/status", body), ("syncd status --json", from_cli)):
        assert problems(check, found) == [], name
        assert set(found) == declared, name
        assert found["drift_open"] and all(set(d) == {"kind", "severity", "count"}
                                           for d in found["drift_open"])
        states = {d["status"] for d in found["alert_deliveries"]}
        assert states == {"pending", "delivered", "dead", "acknowledged", "stopped"}, name
        assert found["codelocks_quota"]["categories"]["utility"]["quota"] == 6000
        assert found["subscriptions"]["neolock"]["status"] == "registered"
    assert {"kind": "phone_not_locked", "severity": "critical", "count": 2} in body["drift_open"]
    assert problems(check, {**body, "surprise": 1}) == [
        ": Additional properties are not allowed ('surprise' was unexpected)"]
    broken = {**body, "drift_open": ["phone_not_locked/critical"]}
    assert problems(check, broken) == ["drift_open/0: 'phone_not_locked/critical' is not of "
                                       "type 'object'"]

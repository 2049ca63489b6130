"""`syncd terminals add|update|delete`: the documented BioTime calls, each in the action log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from syncd.cli.main import build_parser
from syncd.db.pool import Database
from syncd.devtools.simulators import biotime as biosim
from syncd.devtools.simulators.common import serve
from syncd.logs import Redactor
from syncd.settings.core import Settings


async def test_add_update_delete_a_terminal(db: Database, make_settings: Callable[..., Settings],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """add registers, update changes alias and area, delete (once confirmed) removes; each logged
    by the operator."""
    sim = biosim.BioTimeSim(seed=2, terminals=2, unknown=0, timezone="UTC")
    async with serve(biosim.create_app(sim), prefix=biosim.BASE_PATH) as running:
        settings = make_settings(biotime={"base_url": running.url, "username": sim.username,
                                          "password": sim.password})

        async def cli(*argv: str) -> int:
            args = build_parser().parse_args(["terminals", *argv])
            return int(await args.func(args, settings, Redactor([])))

        assert await cli("add", "NEW123", "--alias", "Back door", "--ip", "10.0.0.9",
                         "--area-id", "3") == 0
        (made,) = [t for t in sim.terminals.values() if t.sn == "NEW123"]
        assert (made.alias, made.ip_address, made.area_id) == ("Back door", "10.0.0.9", 3)
        assert await cli("update", "NEW123", "--alias", "Side door", "--area-id", "4") == 0
        assert (made.alias, made.ip_address, made.area_id) == ("Side door", "10.0.0.9", 4)
        assert await cli("update", "NOSUCH", "--alias", "x") == 1
        assert await cli("add", "NEW123", "--alias", "Dup", "--ip", "10.0.0.1") == 1
        assert await cli("delete", "NEW123") == 1  # not confirmed (no terminal): nothing deleted
        assert await cli("delete", "NEW123", "--yes") == 0
        assert all(t.sn != "NEW123" for t in sim.terminals.values())
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT actor, action, outcome, detail FROM ops.remediation_log"
                                " ORDER BY seq")
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("terminal.create", "ok"), ("terminal.update", "ok"), ("terminal.create", "failed"),
        ("terminal.delete", "ok")]
    assert all(r["actor"].startswith("cli") for r in rows)
    assert "already exists" in rows[2]["detail"]["error"]
    assert sim.password not in capsys.readouterr().err

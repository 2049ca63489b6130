"""The action log is append-only and hash-chained; `syncd audit verify` finds the first broken row."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from syncd.cli.main import main
from syncd.db.actions import actions_for, enqueue_alert, record_action, verify_chain
from syncd.db.pool import Database


async def _append_three(db: Database) -> None:
    await record_action(db, actor="cli:ann", action="phone.lock", subject="dev-1", outcome="ok",
                        provider="neolock", detail={"message": "pay", "amount": 1.5})
    async with db.transaction() as conn:
        await record_action(conn, actor="reconcile", action="phone.lock", subject="dev-2",
                            outcome="refused", provider="neolock", detail={"state": "Pending"})
    await record_action(db, actor="cli:bob", action="device.ban", subject="aa:bb", outcome="ok")


async def test_appended_actions_form_an_intact_chain(db: Database) -> None:
    """Actions appended from the pool and from a transaction chain in order and verify intact."""
    await _append_three(db)
    check = await verify_chain(db)
    assert check.ok and check.rows == 3
    (latest,) = await actions_for(db, "dev-2")
    assert (latest.seq, latest.outcome, latest.detail) == (2, "refused", {"state": "Pending"})


async def test_concurrent_appenders_never_fork_the_chain(db: Database) -> None:
    """Forty appends from concurrent transactions still give one unbroken chain of 40 rows."""
    await asyncio.gather(*(record_action(db, actor="t", action="x", subject=f"s{i}", outcome="ok")
                           for i in range(40)))
    check = await verify_chain(db)
    assert check.ok and check.rows == 40


async def test_updates_and_deletes_are_refused(db: Database) -> None:
    """The table refuses UPDATE and DELETE: the log is append-only."""
    await _append_three(db)
    async with db.connection() as conn:
        for statement in ("UPDATE ops.remediation_log SET outcome = 'ok' WHERE seq = 2",
                          "DELETE FROM ops.remediation_log WHERE seq = 3"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(statement)
    assert (await verify_chain(db)).rows == 3


async def test_verify_names_the_first_tampered_row(db: Database) -> None:
    """A row edited behind the triggers' back (by a superuser) is named by verify; so is a gap."""
    await _append_three(db)
    async with db.connection() as conn:
        await conn.execute("ALTER TABLE ops.remediation_log DISABLE TRIGGER USER")
        await conn.execute("UPDATE ops.remediation_log SET outcome = 'ok' WHERE seq = 2")
    check = await verify_chain(db)
    assert (check.ok, check.broken_seq) == (False, 2) and "edited" in (check.reason or "")
    async with db.connection() as conn:
        await conn.execute("UPDATE ops.remediation_log SET outcome = 'refused' WHERE seq = 2")
        assert (await verify_chain(db)).ok
        await conn.execute("DELETE FROM ops.remediation_log WHERE seq = 2")
    check = await verify_chain(db)
    assert (check.ok, check.broken_seq) == (False, 2) and "missing" in (check.reason or "")


async def test_outbox_keeps_one_row_per_event_id(db: Database) -> None:
    """Enqueueing the same webhook id twice stores one alert."""
    assert await enqueue_alert(db, event_id="drift-1-opened", type="drift.opened", payload={"a": 1})
    assert not await enqueue_alert(db, event_id="drift-1-opened", type="drift.opened",
                                   payload={"a": 2})
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ops.outbox") == 1


def test_audit_verify_command_exit_codes(db_dsn: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd audit verify` exits 0 on an intact chain and 1 naming the row on a tampered one."""
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n')

    async def setup(tamper: bool) -> None:
        db = await Database.connect(db_dsn)
        try:
            if not tamper:
                await _append_three(db)
                return
            async with db.connection() as conn:
                await conn.execute("ALTER TABLE ops.remediation_log DISABLE TRIGGER USER")
                await conn.execute("UPDATE ops.remediation_log SET subject = 'x' WHERE seq = 3")
        finally:
            await db.close()

    asyncio.run(setup(tamper=False))
    assert main(["--config", str(cfg), "audit", "verify"]) == 0
    assert "3 row(s), hash chain intact" in capsys.readouterr().out
    asyncio.run(setup(tamper=True))
    assert main(["--config", str(cfg), "audit", "verify"]) == 1
    assert "BROKEN at seq 3" in capsys.readouterr().out

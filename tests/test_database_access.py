"""Reaching the embedded database from elsewhere (TCP, passwords only) and migrate's dry views."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from syncd.cli import main
from syncd.db.readers import ensure_reader
from syncd.runtime import open_database
from syncd.settings import Settings
from syncd.simulators.runner import run_all


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_embedded_listener_admits_readers_with_a_password_and_nobody_else(
        short_dir: Path) -> None:
    """With embedded_listen, a reader logs in over TCP with its password; the superuser cannot,
    and neither can the reader without its password."""
    port = _free_port()
    settings = Settings(data_dir=short_dir,
                        database={"embedded_listen": f"127.0.0.1:{port}"})
    async with open_database(settings, borrow=False, create=True) as db:
        await ensure_reader(db, "tcp_reader", "reader-password-0123")
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="tcp_reader",
                                     password="reader-password-0123", database="postgres")
        try:
            assert await conn.fetchval("SELECT count(*) FROM report.sync_runs") == 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM ops.sync_runs")
        finally:
            await conn.close()
        for user, password in (("postgres", None), ("tcp_reader", None),
                               ("tcp_reader", "wrong-password-000")):
            with pytest.raises((asyncpg.InvalidPasswordError,
                                asyncpg.InvalidAuthorizationSpecificationError)):
                await asyncpg.connect(host="127.0.0.1", port=port, user=user, password=password,
                                      database="postgres")


def test_migrate_status_and_dry_run_change_nothing(empty_db_dsn: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--status lists every migration as pending, --dry-run names them, neither applies one."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{empty_db_dsn}"\n')
    assert main(["migrate", "--status", "--config", str(cfg)]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status and all(line.endswith("pending") for line in status)
    assert main(["migrate", "--dry-run", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"would apply {len(status)} migration(s)")
    assert main(["migrate", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["migrate", "--status", "--config", str(cfg)]) == 0
    assert "pending" not in capsys.readouterr().out


async def test_check_config_connect_reaches_database_and_each_vendor_in_use(
        db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        make_settings: Callable[..., Settings]) -> None:
    """--connect: one line per check (NeoLock, Knox Guard, BioTime each log in); a wrong NeoLock
    password fails that line and exits 1, without printing the password; Codelocks (billed per
    call) is named as not called, and its simulator sees no call."""
    async with run_all(seed=5, devices=2, terminals=2) as sims:
        def config(password: str) -> Path:
            path = tmp_path / f"{uuid.uuid4().hex}.toml"
            path.write_text(
                f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_dsn}"\n'
                f'[server]\npublic_url = "http://127.0.0.1:1"\n'
                f'[neolock]\nbase_url = "{sims.neolock.url}"\nlogin = "{sims.neolock.sim.login}"\n'
                f'password = "{password}"\n'
                f'[biotime]\nbase_url = "{sims.biotime.url}"\n'
                f'username = "{sims.biotime.sim.username}"\n'
                f'password = "{sims.biotime.sim.password}"\n'
                f'[knoxguard]\nbase_url = "{sims.knoxguard.url}"\n'
                f'api_token = "{sims.knoxguard.sim.api_token}"\n'
                f'[codelocks]\nbase_url = "{sims.codelocks.url}"\n'
                f'api_key = "{sims.codelocks.sim.api_key}"\n'
                f'access_keys = ["{sims.codelocks.sim.access_keys[0]}"]\n')
            return path

        good = await asyncio.to_thread(main, ["check-config", "--connect", "--config",
                                              str(config(sims.neolock.sim.password))])
        out = capsys.readouterr().out
        assert good == 0, out
        assert "database: ok" in out and "neolock: ok" in out and "biotime: ok" in out
        assert "knoxguard: ok" in out
        assert "codelocks: not called: its calls are billed" in out
        wrong = "wrong-password-never-printed"
        bad = await asyncio.to_thread(main, ["check-config", "--connect", "--config",
                                             str(config(wrong))])
        captured = capsys.readouterr()
        assert bad == 1
        line = next(ln for ln in captured.out.splitlines() if ln.startswith("neolock:"))
        assert line != "neolock: ok"
        assert wrong not in captured.out + captured.err
    assert sims.codelocks.sim.quota.used == {}  # not one billed call

"""Reaching the embedded database from elsewhere (TCP, passwords only) and migrate's dry views."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from syncd.cli.main import main
from syncd.db.readers import ensure_reader
from syncd.devtools.simulators.runner import run_all
from syncd.runtime import open_database
from syncd.settings.core import Settings

PROBE_PASSWORD = "Pr0be:S3cret/with@odd%chars"  # needs percent-encoding in a URL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_embedded_listener_admits_readers_with_a_password_and_nobody_else(
        short_dir: Path) -> None:
    """With embedded_listen, a reader logs in over TCP with its password (a non-ASCII one too,
    normalised as PostgreSQL does); the superuser cannot, nor can the reader without its password."""
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
        # SASLprep as PostgreSQL and its clients apply it: NFKC makes the ligature "fi", and
        # the no-break space a space, so the verifier syncd computed matches the client's proof.
        await ensure_reader(db, "tcp_reader_utf8", "p\u00e4ssw\u00f6rt-\ufb01le\u00a0\u00fc")
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="tcp_reader_utf8",
                                     password="p\u00e4ssw\u00f6rt-file \u00fc",
                                     database="postgres")
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


def _child(parent: int, name: str, timeout: float = 60) -> int:
    """The pid of `parent`'s child process called `name`, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                comm, rest = (entry / "stat").read_text().rsplit(")", 1)
            except (OSError, ValueError):
                continue
            if int(rest.split()[1]) == parent and comm.endswith(f"({name}"):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no {name} under pid {parent} within {timeout}s")


def _syncd(cfg: Path, *argv: str) -> subprocess.Popen[str]:
    """`python -m syncd …` started with umask 0, so any file it makes is as wide as its mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.Popen([sys.executable, "-m", "syncd", *argv, "--config", str(cfg)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: os.umask(0))


def _seen_by_others(pid: int) -> str:
    """What any user of the host can read of process `pid`: its command line."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _environment(pid: int) -> list[bytes]:
    """Process `pid`'s environment (readable by its owner only)."""
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def _modes(directory: Path, pattern: str) -> dict[str, int]:
    """Permission bits of the files matching `pattern` in `directory`, by name."""
    return {p.name: p.stat().st_mode & 0o777 for p in directory.glob(pattern)}


async def test_psql_and_pg_dump_get_the_password_by_environment_and_dumps_are_0600(
        short_dir: Path, tmp_path: Path) -> None:
    """With a password in database.url (a server that demands it over TCP), `db psql` and
    `db dump` log in, yet their children's command lines hold no password (it is in PGPASSWORD,
    which only the owner can read); the dump is written 0600 from its first byte, even under
    umask 0, and renamed into place when pg_dump is done."""
    port = _free_port()
    settings = Settings(data_dir=short_dir, database={"embedded_listen": f"127.0.0.1:{port}"})
    async with open_database(settings, borrow=False, create=True) as db:
        async with db.connection() as conn:
            await conn.execute(f"CREATE ROLE probe LOGIN SUPERUSER PASSWORD '{PROBE_PASSWORD}'")
        url = f"postgresql://probe:{quote(PROBE_PASSWORD, safe='')}@127.0.0.1:{port}/postgres"
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "unused"}"\n[database]\nurl = "{url}"\n')
        secret_forms = (PROBE_PASSWORD, quote(PROBE_PASSWORD, safe=""))

        async with db.connection() as holder:  # psql waits for this lock: time to look at it
            await holder.execute("SELECT pg_advisory_lock(4242)")
            proc = _syncd(cfg, "db", "psql", "-tA", "-c",
                          "SELECT pg_advisory_lock(4242), current_user")
            psql = await asyncio.to_thread(_child, proc.pid, "psql")
            argv = _seen_by_others(psql)
            assert f"@127.0.0.1:{port}/postgres" in argv
            assert not any(form in argv for form in secret_forms), argv
            assert f"PGPASSWORD={PROBE_PASSWORD}".encode() in _environment(psql)
            await holder.execute("SELECT pg_advisory_unlock(4242)")
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "|probe"

        dump = tmp_path / "syncd.dump"
        async with db.transaction() as holder:  # pg_dump waits for this lock
            await holder.execute("LOCK TABLE local.terminals IN ACCESS EXCLUSIVE MODE")
            proc = _syncd(cfg, "db", "dump", "-o", str(dump))
            pg_dump = await asyncio.to_thread(_child, proc.pid, "pg_dump")
            argv = _seen_by_others(pg_dump)
            assert not any(form in argv for form in secret_forms), argv
            assert list(_modes(tmp_path, ".syncd.dump.*.partial").values()) == [0o600]
            assert _modes(tmp_path, dump.name) == {}  # nothing at the final name until whole
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert out.startswith(f"dumped to {dump} (") and out.rstrip().endswith("mode 0600)")
        assert int(out.split("(")[1].split()[0]) > 1000  # bytes: a whole dump, not an empty file
        assert _modes(tmp_path, "*dump*") == {dump.name: 0o600}  # the partial file is gone

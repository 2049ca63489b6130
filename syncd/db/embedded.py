"""Embedded PostgreSQL (pgserver) under data_dir, for when no database.url is configured.

pgserver is pinned (pyproject.toml) and so is the PostgreSQL major version it bundles: a data
directory written by another major version is refused with a clear message instead of a
postmaster that will not start (README, "Upgrading PostgreSQL").

By default the server listens on a unix socket only. With `database.embedded_listen =
"host:port"` it also listens on TCP, where every login needs a password (scram-sha-256): the
superuser has none, so only roles made with `syncd db reader` can log in from the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from syncd.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)
HANDLE_PIDS = ".handle_pids.json"  # pgserver's list of the processes using a data dir

PG_MAJOR = "16"  # what pgserver 0.1.4 bundles; checked against the binaries at start
_HBA_MARK = "# syncd: TCP logins need a password"


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, containers); harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver  # imported lazily: it is only needed when no database.url is set
    return pgserver


def bin_path() -> Path:
    """Directory of the bundled PostgreSQL programs (psql, pg_dump, pg_restore, …)."""
    return Path(_pgserver().__file__).parent / "pginstall" / "bin"


def check_major(pgdata: Path) -> None:
    """Refuse a data directory made by another PostgreSQL major version."""
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != PG_MAJOR:
            raise DatabaseUnavailable(
                f"{pgdata} holds a PostgreSQL {found} database but this syncd bundles PostgreSQL "
                f"{PG_MAJOR}: dump it with the old version and restore it (README, 'Upgrading "
                "PostgreSQL')")


def parse_listen(value: str) -> tuple[str, int]:
    """`"127.0.0.1:5433"` → ("127.0.0.1", 5433)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def dsn_of(info: Any, user: str = "postgres", database: str = "postgres") -> str:
    """The unix-socket DSN of a running embedded server (with its port: it may not be 5432)."""
    return f"postgresql://{user}@/{database}?host={info.socket_dir}&port={info.port}"


def _require_passwords_on_tcp(pgdata: Path) -> None:
    # initdb --auth=trust trusts loopback TCP too; over TCP, ask for a password instead.
    hba = pgdata / "pg_hba.conf"
    text = hba.read_text()
    if _HBA_MARK in text:
        return
    text = re.sub(r"^(host\S*\s.*?)\btrust\s*$", r"\1scram-sha-256", text, flags=re.MULTILINE)
    text += (f"\n{_HBA_MARK}\nhost all all 0.0.0.0/0 scram-sha-256\n"
             "host all all ::/0 scram-sha-256\n")
    hba.write_text(text)


def _is_pgserver_user(uid: int) -> bool:
    # As root, pgserver runs PostgreSQL as its own "pgserver" account and owns the files so.
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name == "pgserver"
    except KeyError:
        return False


def _start(pgdata: Path, listen: str | None) -> Any:
    pgserver = _pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    check_major(pgdata)
    owner = pgdata.stat().st_uid
    if owner != os.geteuid() and not (os.geteuid() == 0 and _is_pgserver_user(owner)):
        # Starting it would mean chown-ing another user's database (the service's).
        raise DatabaseUnavailable(f"the embedded PostgreSQL under {pgdata} is not running and "
                                  f"belongs to uid {owner}: start syncd (the service) or run this "
                                  "command as that user")
    _forget_dead_handles(pgdata, pgserver.PostgresServer._lock)
    # cleanup_mode="stop": the server stops when the last process using this data dir exits, so
    # several syncd commands sharing one data_dir share one server (pgserver keeps the count).
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    if listen:
        host, port = parse_listen(listen)
        if (info.hostname or "") != host or info.port != port:
            _require_passwords_on_tcp(pgdata)
            as_user = {"user": "pgserver"} if os.geteuid() == 0 else {}
            pgserver.pg_ctl(["-w", "-l", str(pgdata / "log"), "-o", f'-h "{host}"',
                             "-o", f"-p {port}", "-o", f"-k {info.socket_dir}", "restart"],
                            pgdata=pgdata, **as_user)
            # pgserver stops the postmaster it knows of when the last user leaves: tell it the
            # new one (pgserver is pinned; this is its PostmasterInfo).
            server._postmaster_info = type(info).read_from_pgdata(pgdata)
            log.info("db.embedded_listening", host=host, port=port)
    return server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _forget_dead_handles(pgdata: Path, lock: Any) -> None:
    """Drop processes that no longer exist from pgserver's list of the server's users.

    pgserver stops the server when its last user exits cleanly, by that list. A user killed with
    SIGKILL never removes itself, so without this every later clean stop would believe another
    user remains and leave PostgreSQL running.
    """
    handles = pgdata / HANDLE_PIDS
    with lock:  # the inter-process lock pgserver holds while it edits the list
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [p for p in pids if isinstance(p, int) and _alive(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))
            log.info("db.embedded_forgot_dead_users", pids=[p for p in pids if p not in alive])


@contextlib.asynccontextmanager
async def embedded_postgres(data_dir: Path, listen: str | None = None) -> AsyncIterator[str]:
    """Start (or join) the embedded PostgreSQL under data_dir/postgres and yield its DSN."""
    pgdata = (data_dir / "postgres").resolve()
    try:
        server = await asyncio.to_thread(_start, pgdata, listen)
    except DatabaseUnavailable:
        raise
    except Exception as err:  # pgserver raises plain exceptions from initdb/pg_ctl
        raise DatabaseUnavailable(f"embedded PostgreSQL under {pgdata} did not start: {err}") from err
    dsn = dsn_of(server.get_postmaster_info())
    log.info("db.embedded_started", pgdata=str(pgdata))
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.cleanup)
        log.info("db.embedded_stopped", pgdata=str(pgdata))


def initialised(data_dir: Path) -> bool:
    """Whether data_dir holds an embedded database (initdb has run), running or not."""
    return (data_dir / "postgres" / "PG_VERSION").exists()


def running_dsn(data_dir: Path) -> str | None:
    """The DSN of the embedded server if one is running under data_dir (without starting one)."""
    pgdata = (data_dir / "postgres").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return None
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(pgdata)
    return dsn_of(info) if info is not None and info.is_running() else None

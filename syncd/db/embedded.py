"""Embedded PostgreSQL (pgserver) under data_dir, for when no database.url is configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from syncd.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)
HANDLE_PIDS = ".handle_pids.json"  # pgserver's list of the processes using a data dir


def _start(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, containers); harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver  # imported lazily: it is only needed when no database.url is set

    pgdata.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata, pgserver.PostgresServer._lock)
    # cleanup_mode="stop": the server stops when the last process using this data dir exits, so
    # several syncd commands sharing one data_dir share one server (pgserver keeps the count).
    return pgserver.get_server(pgdata, cleanup_mode="stop")


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
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Start (or join) the embedded PostgreSQL under data_dir/postgres and yield its DSN."""
    pgdata = (data_dir / "postgres").resolve()
    try:
        server = await asyncio.to_thread(_start, pgdata)
    except Exception as err:  # pgserver raises plain exceptions from initdb/pg_ctl
        raise DatabaseUnavailable(f"embedded PostgreSQL under {pgdata} did not start: {err}") from err
    dsn = str(server.get_uri())
    log.info("db.embedded_started", pgdata=str(pgdata))
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.cleanup)
        log.info("db.embedded_stopped", pgdata=str(pgdata))

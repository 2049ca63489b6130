"""Embedded PostgreSQL (pgserver) under data_dir, for when no database.url is configured."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from syncd.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)


def _start(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, containers); harmless here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver  # imported lazily: it is only needed when no database.url is set

    pgdata.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when the last process using this data dir exits, so
    # several syncd commands sharing one data_dir share one server (pgserver keeps the count).
    return pgserver.get_server(pgdata, cleanup_mode="stop")


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

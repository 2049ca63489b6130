"""The drill's own PostgreSQL: an embedded server (pgserver) in its own directory, so that a
restart in the middle of a drill disturbs no other test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

DATABASE = "drill"


def _pg_ctl(pgdata: Path, *args: str) -> None:
    """pg_ctl on the server, as the "pgserver" user when root (as pgserver itself does)."""
    import pgserver

    as_user = {"user": "pgserver"} if os.geteuid() == 0 else {}
    pgserver.pg_ctl(list(args), pgdata=pgdata, timeout=60, **as_user)


class Postgres:
    """One embedded PostgreSQL server with a `drill` database; it can be restarted."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "pg"
        self.admin_dsn = ""
        self.socket_dir = ""
        self.restarts: list[tuple[float, float]] = []  # (went down, came back), wall clock

    @property
    def dsn(self) -> str:
        """DSN of the drill database."""
        return urlunsplit(urlsplit(self.admin_dsn)._replace(path=f"/{DATABASE}"))

    async def start(self) -> None:
        """Initialise and start the server; create the drill database."""
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)  # stopped by stop()
        self.admin_dsn = str(server.get_uri())
        self.socket_dir = parse_qs(urlsplit(self.admin_dsn).query)["host"][0]
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    def restart(self) -> tuple[float, float]:
        """Stop the server (fast: connections are cut) and start it again; return when it went
        down and when it accepted connections again (wall clock)."""
        down = time.time()
        _pg_ctl(self.pgdata, "-w", "-m", "fast", "stop")
        _pg_ctl(self.pgdata, "-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                "-l", str(self.pgdata / "log"), "start")
        window = (down, time.time())
        self.restarts.append(window)
        return window

    def stop(self) -> None:
        """Stop the server at once (the drill is over)."""
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _pg_ctl(self.pgdata, "-w", "-m", "immediate", "stop")

    async def connect(self) -> asyncpg.Connection:
        """A connection to the drill database, for the harness's own SQL."""
        return await asyncpg.connect(self.dsn, timeout=5)

"""What every benchmark shares: the PostgreSQL server, fresh migrated databases, reports, helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from syncd.db.migrate import migrate
from syncd.db.pool import Database
from syncd.logs import configure

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL_ENV = "SYNCD_BENCH_DATABASE_URL"  # a superuser DSN; else an embedded server is started


@dataclasses.dataclass
class Report:
    """One benchmark's outcome: a summary line and indented detail lines."""

    name: str
    value: str
    target: str
    met: bool
    details: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        """`name: value (target …)`, with MISSED appended when the target is missed, then details."""
        head = f"{self.name}: {self.value} (target {self.target})"
        return [head if self.met else f"{head} MISSED", *(f"  {d}" for d in self.details)]


def quiet_logging() -> None:
    """Send syncd's logs (warnings and up) to stderr, so stdout carries only the results."""
    configure(level="warning", fmt="json", stream=sys.stderr)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of `values` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dsn_for(admin_dsn: str, dbname: str) -> str:
    """The same server's DSN for another database."""
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def subprocess_env() -> dict[str, str]:
    """The environment for `python -m bench.…` children: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def run_json(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run `python -m module args…` to completion and return the JSON object it printed last."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=REPO_ROOT, env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{module} did not finish within {timeout:g}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{module} exited with {proc.returncode}")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"{module} printed nothing")
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise RuntimeError(f"{module} printed {lines[-1][:100]!r}, not a JSON object")
    return result


class Postgres:
    """A PostgreSQL server for the benchmarks: each asks for a fresh migrated database of its own.

    With no admin DSN given, an embedded server is started under `workdir` on first use, so
    benchmarks that need no database do not wait for one.
    """

    def __init__(self, admin_dsn: str | None, workdir: Path) -> None:
        self._admin_dsn = admin_dsn
        self._workdir = workdir
        self._server: Any = None
        self._template: str | None = None
        self._lock = asyncio.Lock()
        self.prefix = f"syncd_bench_{os.getpid()}"

    async def admin_dsn(self) -> str:
        """A superuser DSN to the server (starting the embedded one if need be)."""
        async with self._lock:
            if self._admin_dsn is None:
                self._server = await asyncio.to_thread(_start_embedded, self._workdir)
                self._admin_dsn = str(self._server.get_uri())
            return self._admin_dsn

    async def admin(self, sql: str) -> None:
        """Run one statement as the admin user on the admin database."""
        conn = await asyncpg.connect(await self.admin_dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _template_db(self) -> str:
        if self._template is None:
            name = f"{self.prefix}_tpl"
            await self.admin(f'DROP DATABASE IF EXISTS "{name}"')
            await self.admin(f'CREATE DATABASE "{name}"')
            db = await Database.connect(dsn_for(await self.admin_dsn(), name), min_size=1,
                                        max_size=2)
            try:
                await migrate(db)
            finally:
                await db.close()
            self._template = name
        return self._template

    @contextlib.asynccontextmanager
    async def database(self, label: str) -> AsyncIterator[str]:
        """A fresh migrated database (cloned from a template) for the block; dropped afterwards."""
        template = await self._template_db()
        name = f"{self.prefix}_{label}"
        await self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        try:
            yield dsn_for(await self.admin_dsn(), name)
        finally:
            await self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        """Drop the template database; stop the embedded server if one was started."""
        try:
            if self._template is not None:
                await self.admin(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
                self._template = None
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.cleanup)
                self._server = None


def _start_embedded(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver.get_server(pgdata, cleanup_mode="stop")


@contextlib.asynccontextmanager
async def postgres_server() -> AsyncIterator[Postgres]:
    """$SYNCD_BENCH_DATABASE_URL's server, else an embedded PostgreSQL in a short temp dir."""
    # Short path: the embedded server's unix socket lives in the data dir and socket paths are
    # limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        pg = Postgres(os.environ.get(DATABASE_URL_ENV) or None, Path(tmp))
        try:
            yield pg
        finally:
            await pg.close()

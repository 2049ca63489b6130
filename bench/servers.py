"""The servers `ingest` and `registry` compare, each in a process of its own, and the load on them.

- `bench_server()`: `python -m bench.serve` (bare aiohttp or the hand-built floor).
- `syncd_server()`: the real daemon, `python -m syncd run`, configured by a TOML file, ready
  when it says READY=1 on a notify socket the benchmark binds (as systemd does).
- `drive()`: one round of load: `wrk` with a Lua script under bench/wrk/ when wrk is installed
  (every push its own id, every registration its own MAC), else the Python generator
  (`bench.load` / `bench.regload`, a fixed count; the report says so).
- `Server.cpu()`: the server process's CPU seconds so far, from /proc/PID/stat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, free_port, percentile, run_json, subprocess_env

WRK = shutil.which("wrk")
WRK_DIR = Path(__file__).resolve().parent / "wrk"
CONNECTIONS = 64
FALLBACK_REQUESTS = 2000  # per round when the Python generator stands in for wrk
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass
class Server:
    """A server process: its pid (for its CPU time) and the URL of the route under load."""

    name: str
    pid: int
    url: str

    def cpu(self) -> float:
        """User + system CPU seconds the process has used so far (NaN where /proc is missing)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


@contextlib.asynccontextmanager
async def bench_server(side: str, route: str, path: str, dsn: str | None = None
                       ) -> AsyncIterator[Server]:
    """`python -m bench.serve SIDE ROUTE [DSN]`, serving `path`; stopped when the block ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.serve", side, route, *([dsn] if dsn else []),
        cwd=REPO_ROOT, env=subprocess_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"bench.serve {side} {route} exited before it listened")
        port = int(json.loads(line)["port"])
        yield Server(side, proc.pid, f"http://127.0.0.1:{port}{path}")
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _toml(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """A syncd.toml of `sections` (nested tables as dotted names), readable by its owner only."""
    lines: list[str] = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in keys.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def syncd_server(workdir: Path, path: str, sections: dict[str, dict[str, Any]]
                       ) -> AsyncIterator[Server]:
    """`python -m syncd run` with `sections` as its config file (plus data_dir, host and port),
    its logs in `workdir`/syncd.log; yielded once READY=1, stopped by SIGTERM when the block ends."""
    port = free_port()
    config = workdir / "syncd.toml"
    # the admin listener on a port of its own too: two daemons at once must not both want 8090
    write_config(config, {"server": {"host": "127.0.0.1", "port": port},
                          "admin": {"port": free_port()}, **sections})
    notify = workdir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("SYNCD_")}
    env.update(SYNCD_CONFIG=str(config), SYNCD_DATA_DIR=str(workdir), NOTIFY_SOCKET=str(notify))
    log = os.open(workdir / "syncd.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncd", "run", cwd=REPO_ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    finally:
        os.close(log)
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(120):
            while b"READY=1" not in await loop.sock_recv(sock, 4096):
                pass
        yield Server("syncd", proc.pid, f"http://127.0.0.1:{port}{path}")
    except TimeoutError:
        raise RuntimeError(f"syncd run did not get ready; its log: {workdir / 'syncd.log'}"
                           ) from None
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        sock.close()  # after syncd's STOPPING=1, which would otherwise log sdnotify.failed


async def counter(url: str, name: str, **labels: str) -> float:
    """The value of one series on syncd's /metrics (0 when absent)."""
    import aiohttp

    base = url.split("/", 3)
    async with aiohttp.ClientSession() as session, \
            session.get(f"{base[0]}//{base[2]}/metrics") as resp:
        text = await resp.text()
    want = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and want <= set((match.group(1) or "").split(",")):
            total += float(match.group(2))
    return total


@dataclasses.dataclass
class Round:
    """One round of load on one server: what the load generator saw and the server's CPU."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    ok: int  # 200 answers read
    stored: int  # 200 answers read that say stored / Success
    errors: int  # socket errors and timeouts
    cpu: float  # the server process's CPU seconds during the round

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """The server's CPU milliseconds per completed request."""
        return self.cpu / self.requests * 1000 if self.requests else float("nan")


def load_generator() -> str:
    """What drives the load, for the report."""
    if WRK:
        return f"wrk ({WRK}, 1 thread, {CONNECTIONS} connections, Lua scripts in bench/wrk/)"
    return (f"the Python generator (wrk is not installed: apt-get install wrk), "
            f"{FALLBACK_REQUESTS} requests a round over {CONNECTIONS} connections")


async def drive(server: Server, script: str, seconds: float, args: list[str],
                fallback: tuple[str, list[str]]) -> Round:
    """One round against `server`: wrk running bench/wrk/`script` with `args` for `seconds`,
    else the Python generator `fallback` (module, extra arguments)."""
    cpu = server.cpu()
    if WRK:
        result = await _wrk(server.url, script, seconds, args)
    else:
        module, extra = fallback
        result = _from_generator(await run_json(module, server.url, str(FALLBACK_REQUESTS),
                                                str(CONNECTIONS), *extra, timeout=180))
    return Round(**result, cpu=server.cpu() - cpu)


async def _wrk(url: str, script: str, seconds: float, args: list[str]) -> dict[str, Any]:
    argv = [str(WRK), "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "30s",
            "-s", str(WRK_DIR / script), url, "--", *args]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), seconds + 60)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(err or out).decode()[-300:]}")
    doc = json.loads(lines[-1])
    return {"requests": doc["requests"], "seconds": doc["duration_us"] / 1e6,
            "p50_ms": doc["p50_us"] / 1000, "p99_ms": doc["p99_us"] / 1000, "ok": doc["ok"],
            "stored": doc["stored"], "errors": sum(doc["errors"].values()) - doc["errors"]["status"]}


def _from_generator(result: dict[str, Any]) -> dict[str, Any]:
    latencies = [float(x) for x in result["latencies_ms"]]
    statuses = result["statuses"]
    return {"requests": int(result["requests"]), "seconds": float(result["seconds"]),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "ok": int(statuses.get("200", 0)), "stored": int(result["stored"]),
            "errors": sum(n for s, n in statuses.items() if not s.isdigit())}

"""The drill's OS processes: `syncd simulate` (steered over its control API), `syncd run` replicas,
and one-shot `syncd` commands, each started as an operator would start it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
SIMULATORS_READY = 30.0  # seconds for `syncd simulate` to print its control URL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environ() -> dict[str, str]:
    """The environment of a syncd process: this worktree's code first, no developer SYNCD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def syncd(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run `python -m syncd ARGS` to its end; its exit code and output (stdout then stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", *args, env=environ(), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"syncd {' '.join(args)}: no exit within {timeout:g}s"
    return proc.returncode or 0, (out + err).decode(errors="replace")


class Simulators:
    """`syncd simulate` in its own process: all four vendors plus the control API."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.control = ""
        self.sections: dict[str, dict[str, Any]] = {}
        self.http: aiohttp.ClientSession | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def start(self, devices: int) -> None:
        """Start the simulators and read the control URL they print."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncd", "simulate", "--devices", str(devices),
            env=environ(), cwd=REPO, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        assert self.proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(SIMULATORS_READY):
            while not self.control:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError("syncd simulate exited:\n" + "".join(lines))
                line = raw.decode()
                lines.append(line)
                if line.startswith("control "):
                    self.control = line.split()[1]
        self.log.write_text("".join(lines))
        self._drainer = asyncio.create_task(self._drain())  # its output must not block it
        self.http = aiohttp.ClientSession(base_url=self.control,
                                          timeout=aiohttp.ClientTimeout(total=15))
        self.sections = await self.call("GET", "/vendors")

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log.open("ab") as out:
            while line := await self.proc.stdout.readline():
                out.write(line)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One control API call; its JSON answer."""
        assert self.http is not None
        async with self.http.request(method, path, **kwargs) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def fault(self, vendor: str, **spec: Any) -> None:
        """Inject a fault on every route of `vendor` (FaultSpec fields), replacing the last one."""
        await self.call("PUT", f"/faults/{vendor}", json={"route": "*", **spec})

    async def stop(self) -> None:
        """Stop the simulators (SIGTERM, then SIGKILL)."""
        if self.http is not None:
            await self.http.close()
        if self.proc is not None and self.proc.returncode is None:
            await terminate(self.proc, 10.0)
        if self._drainer is not None:
            await self._drainer


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit code."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


@dataclasses.dataclass
class Replica:
    """One `syncd run` process with its own config, port and log file."""

    name: str
    config: Path
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    killed_at: float | None = None  # kill -9, wall clock
    stopped_at: float | None = None  # SIGTERM, wall clock
    exit_code: int | None = None

    @property
    def url(self) -> str:
        """Where the replica listens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id (the runner id in ops.sync_runs ends with it)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Started and neither killed nor stopped."""
        return self.proc is not None and self.killed_at is None and self.stopped_at is None

    @property
    def gone_at(self) -> float | None:
        """When the process was killed or stopped (wall clock), if it was."""
        return self.killed_at or self.stopped_at

    async def start(self) -> None:
        """Start `python -m syncd run --config …`, its output into its log file."""
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "syncd", "run", "--config", str(self.config),
                env=environ(), cwd=REPO, stdout=out, stderr=asyncio.subprocess.STDOUT)
        self.started_at = time.time()

    async def wait_listening(self, http: aiohttp.ClientSession, deadline: float) -> bool:
        """Poll /healthz until it answers (the process listens) or `deadline` (monotonic)."""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(self.url + "/healthz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.3)
        return False

    async def kill9(self) -> None:
        """SIGKILL: the process dies mid-whatever, as on a power cut or the OOM killer."""
        assert self.proc is not None
        self.killed_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.exit_code = await self.proc.wait()

    async def stop(self, grace: float = 20.0) -> None:
        """SIGTERM and wait for the graceful stop (SIGKILL after `grace` seconds)."""
        if self.proc is None or not self.alive:
            return
        self.stopped_at = time.time()
        self.exit_code = await terminate(self.proc, grace)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the replica's output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

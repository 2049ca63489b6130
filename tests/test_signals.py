"""Every signal that stops syncd also stops its embedded PostgreSQL (no orphaned postmaster)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.waiting import wait_for_blocking


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(short_dir: Path, *argv: str, port: int | None = None) -> subprocess.Popen[str]:
    cfg = short_dir / "syncd.toml"
    cfg.write_text(f'data_dir = "{short_dir}"\n[server]\nport = {port or _free_port()}\n'
                   '[admin]\nport = 0\n[logging]\nformat = "json"\n[jobs.housekeeping]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.Popen([sys.executable, "-m", "syncd", *argv, "--config", str(cfg),
                             "--log-level", "info"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _postmaster(short_dir: Path, proc: subprocess.Popen[str], timeout: float = 60) -> int:
    """Wait until the embedded server runs; its pid."""
    pidfile = short_dir / "postgres" / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if pidfile.exists() and "ready" in pidfile.read_text():
            return int(pidfile.read_text().splitlines()[0])
        time.sleep(0.1)
    raise AssertionError("the embedded PostgreSQL did not start")


def _gone(pid: int, timeout: float = 20) -> bool:
    """Whether process `pid` exits (or is a zombie no one reaped yet) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def _reading_child(pid: int, name: str) -> bool:
    """Whether process `pid` has a child called `name` that is asleep (waiting on its input)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone since the listing
            continue
        comm, rest = text.split(" (", 1)[1].rsplit(") ", 1)
        state, ppid = rest.split()[:2]
        if comm == name and int(ppid) == pid and state == "S":
            return True
    return False


def test_sighup_stops_the_daemon_and_its_postgres(short_dir: Path) -> None:
    """`syncd run` given SIGHUP drains, exits 0 and stops the embedded PostgreSQL it started."""
    proc = _start(short_dir, "run")
    postmaster = _postmaster(short_dir, proc)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until it serves, so the signal meets the running daemon
        if "syncd.ready" in line:
            assert '"version"' in line
            break
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "syncd.stopped" in err
    assert _gone(postmaster), "postmaster outlived syncd"


def test_sigterm_stops_a_one_shot_command_and_its_postgres(short_dir: Path) -> None:
    """A one-shot command (`db psql`, waiting on its input) killed by SIGTERM stops PostgreSQL too."""
    made = _start(short_dir, "migrate")  # `db psql` uses a database, it does not create one
    out, err = made.communicate(timeout=120)
    assert made.returncode == 0 and out.startswith("applied "), err
    proc = _start(short_dir, "db", "psql")
    postmaster = _postmaster(short_dir, proc)
    wait_for_blocking(lambda: _reading_child(proc.pid, "psql"), timeout=30,
                      what="psql to start and wait on its (empty, open) stdin")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert _gone(postmaster), "postmaster outlived syncd"


def test_a_port_in_use_is_one_line_and_stops_postgres(short_dir: Path) -> None:
    """`syncd run` on a busy port exits 1 with one clear line, no traceback, and no postmaster left."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(short_dir, "run", port=port)
        postmaster = _postmaster(short_dir, proc)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"syncd run: cannot listen on 127.0.0.1:{port}: " in err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if not line.startswith("{")] == [
        line for line in err.splitlines() if line.startswith("syncd run: cannot listen")]
    assert _gone(postmaster)

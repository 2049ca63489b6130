"""`syncd run` as a real subprocess: sd_notify handshake, watchdog, graceful SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.settings.core import Settings
from tests.conftest import free_port

SECRET = "pw-that-must-never-leak-42"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield path, sock
    sock.close()


def wait_for(sock: socket.socket, wanted: str, seen: list[str]) -> None:
    """Receive messages until one contains `wanted` (all are appended to `seen`)."""
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.split("\n"):
            return


def start(tmp_path: Path, settings: Settings, port: int, notify: str) -> subprocess.Popen[str]:
    assert settings.database.url is not None
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[database]
url = "{settings.database.url.get_secret_value()}"
[server]
port = {port}
shutdown_timeout = 5
[admin]
port = 0
[logging]
format = "json"
[neolock]
base_url = "http://127.0.0.1:9/api"
login = "shop"
password = "{SECRET}"
[jobs.neolock-uploads]
enabled = false
[jobs.neolock-devices]
enabled = false
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env.update(NOTIFY_SOCKET=notify, WATCHDOG_USEC="400000")
    return subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_notifies_ready_pings_watchdog_and_stops_cleanly(
        sig: signal.Signals, tmp_path: Path, make_settings: Callable[..., Settings],
        notify_socket: tuple[str, socket.socket]) -> None:
    """READY=1 once serving, WATCHDOG=1 while healthy, STOPPING=1 on the signal, then exit 0."""
    path, sock = notify_socket
    port = free_port()
    proc = start(tmp_path, make_settings(), port, path)
    seen: list[str] = []
    try:
        wait_for(sock, "READY=1", seen)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert resp.status == 200
        wait_for(sock, "WATCHDOG=1", seen)
        proc.send_signal(sig)
        wait_for(sock, "STOPPING=1", seen)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert seen.index(next(m for m in seen if "READY=1" in m)) < \
        seen.index(next(m for m in seen if "STOPPING=1" in m))
    assert '"event": "syncd.stopped"' in output
    assert SECRET not in output  # the configured password never reaches the logs

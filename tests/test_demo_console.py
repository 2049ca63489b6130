"""`syncd demo --keep` (what `make demo` runs): it ends by printing the console's URL and keeps
the console browsable, with what the demo did on it, until Ctrl-C."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

PAGES = ("", "drift?status=all", "alerts", "quota", "fleet")


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> tuple[str, str]:
    """Lines of stdout until one matches `pattern` (its match, and everything read)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=1.0):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found.group(1), "".join(seen)
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{''.join(seen)}")


@pytest.mark.timeout(300)  # an embedded PostgreSQL, four simulators and a whole cycle
def test_demo_keep_prints_the_console_url_and_serves_it_until_ctrl_c() -> None:
    """The demo's last lines are its verdict and the console URL; every console page answers
    there and shows the demo's jobs (now scheduled), drift, alerts, quota and devices; Ctrl-C
    (SIGINT) stops it with exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "demo", "--keep"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, output = _read_until(proc, r"^console: (http://127\.0\.0\.1:\d+/ui/) ", 240)
        assert "demo OK" in output, output
        bodies = {}
        for page in PAGES:
            with urllib.request.urlopen(url + page, timeout=10) as reply:  # noqa: S310 - loopback
                assert reply.status == 200
                bodies[page] = reply.read().decode()
        assert "neolock-devices" in bodies[""] and "k3-audit" in bodies[""]
        assert "every 30.0 s" in bodies[""]  # kept, syncd's scheduler runs the jobs
        assert "phone_not_locked" in bodies["drift?status=all"]
        assert "demo-receiver" in bodies["alerts"]
        assert "Business" in bodies["quota"]  # the simulator's Codelocks plan
        assert "6 devices registered" in bodies["fleet"]
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "demo stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

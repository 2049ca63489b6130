"""The CLI starts at once: help, completion and version import no vendor client, no HTTP or
database driver and no JWT/crypto library; each command imports what it uses when it runs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli.main import build_parser
from syncd.jobs import catalog
from syncd.reconcile.job import NAME as RECONCILE_JOB

# What a help screen must not cost: each of these takes a large share of a cold start.
HEAVY = ("aiohttp", "asyncpg", "jwt", "cryptography", "jinja2", "apscheduler", "pgserver",
         "syncd.vendors", "syncd.db", "syncd.sync", "syncd.devtools.simulators.runner")

PROBE = """
import json, sys
from syncd.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _commands() -> list[list[str]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [[name, "--help"] for name in sub.choices]


def _loaded(argv: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          timeout=60, check=True)
    modules: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return modules


@pytest.mark.parametrize("argv", [["--help"], ["completion", "bash"], ["completion", "zsh"],
                                  ["version"], *_commands()], ids=" ".join)
def test_help_completion_and_version_import_nothing_heavy(argv: list[str]) -> None:
    """Help for syncd and for each command, completion and version load none of HEAVY."""
    heavy = [m for m in _loaded(argv) if m.startswith(HEAVY)]
    assert heavy == [], f"`syncd {' '.join(argv)}` imported {heavy[:8]}"


def test_the_probe_sees_a_command_that_does_import_the_drivers(tmp_path: Path) -> None:
    """The check above can fail: a command that opens the database (status, against a port
    nobody listens on) loads the driver, and the probe reports it."""
    config = tmp_path / "syncd.toml"
    config.write_text('[database]\nurl = "postgresql://syncd@127.0.0.1:9/syncd"\n')
    loaded = _loaded(["status", "--timeout", "1", "--config", str(config)])
    assert "asyncpg" in loaded and "syncd.db.pool" in loaded


def test_the_catalog_names_the_reconcile_job_as_the_job_does() -> None:
    """The job table names reconcile without importing it; the two names agree."""
    assert catalog.RECONCILE == RECONCILE_JOB
    assert catalog.RECONCILE in catalog.built()

"""The drill runs once per session (short inside `make test`; `DRILL=long`, as `make drill` sets,
for the long one); each test then asserts one row, and the table is printed in the summary."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills import scenario

TABLE = pytest.StashKey[str]()


def selected() -> scenario.Plan:
    """The drill this session runs: DRILL=long selects the long one."""
    return scenario.LONG if os.environ.get("DRILL", "").lower() == "long" else scenario.SHORT


@pytest.fixture(scope="package")
def drill(request: pytest.FixtureRequest) -> Iterator[scenario.Report]:
    """Run the selected drill; its logs are kept (and named in the table) when a row failed."""
    root = Path(tempfile.mkdtemp(prefix="sd-drill-"))  # short: PostgreSQL's unix socket lives here
    report = asyncio.run(scenario.run(selected(), root))
    shutil.rmtree(root / "pg", ignore_errors=True)
    request.config.stash[TABLE] = report.table() + "".join(f"\n  note: {n}" for n in report.notes)
    yield report
    if all(row.held is not False for row in report.rows):
        shutil.rmtree(root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the drill's table (invariant | held? | numbers) after the run."""
    table = config.stash.get(TABLE, None)
    if table is not None:
        terminalreporter.write_sep("=", "drill")
        terminalreporter.write_line(table)

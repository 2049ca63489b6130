"""The embedded PostgreSQL's major version is pinned: another major's data directory is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from syncd.db.embedded import PG_MAJOR, bin_path, check_major
from syncd.errors import DatabaseUnavailable


def test_bundled_postgres_is_the_pinned_major() -> None:
    """The pinned pgserver bundles the PostgreSQL major syncd expects (PG_MAJOR)."""
    out = subprocess.run([str(bin_path() / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[-1].split(".")[0] == PG_MAJOR


def test_a_data_directory_of_another_major_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """PG_VERSION 15 under data_dir/postgres: a clear error naming both versions and the README."""
    (tmp_path / "PG_VERSION").write_text("15\n")
    with pytest.raises(DatabaseUnavailable, match=rf"PostgreSQL 15 .* bundles PostgreSQL {PG_MAJOR}"
                       r".*Upgrading PostgreSQL"):
        check_major(tmp_path)
    (tmp_path / "PG_VERSION").write_text(f"{PG_MAJOR}\n")
    check_major(tmp_path)  # the same major is fine

"""`syncd audit verify`: check the hash chain of the action log (ops.remediation_log)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from syncd.cli.help import add_command

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config



def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` to the CLI."""
    parser = add_command(subparsers, "audit", "the append-only action log: check its hash chain",
                         "syncd audit verify")
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    add_command(actions, "verify", "recompute the hash chain; exit 1 at the first broken row",
                "syncd audit verify").set_defaults(func=verify)


async def verify(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Print how many rows fit the chain, or the first one that does not (exit 1)."""
    from syncd.db.actions import verify_chain
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        check = await verify_chain(db)
    if check.ok:
        print(f"action log OK: {check.rows} row(s), hash chain intact")
        return 0
    print(f"action log BROKEN at seq {check.broken_seq}: {check.reason} "
          f"({check.rows} row(s) checked)")
    return 1

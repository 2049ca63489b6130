"""`syncd quota`: the Codelocks call quota: use this period, projection, the planner's next runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.help import add_command

if TYPE_CHECKING:
    import aiohttp

    from syncd.db.pool import Database
    from syncd.logs import Redactor
    from syncd.settings import core as config


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `quota` to the CLI."""
    parser = add_command(subparsers, "quota", "Codelocks call quota: use, projection, next runs",
                         "syncd quota", "syncd quota --json | jq .")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=show_quota)


async def quota_of(db: Database, settings: config.Settings,
                   http: aiohttp.ClientSession) -> dict[str, Any]:
    """The quota status of this configuration (no vendor call)."""
    from syncd.jobs import catalog
    from syncd.sync.codelocks.jobs import K3Context
    from syncd.sync.codelocks.status import quota_status

    assert settings.codelocks is not None
    disabled = [name for name, every in catalog.schedule(settings).items() if every is None]
    return await quota_status(K3Context(db, settings.codelocks, http), disabled=disabled)


async def show_quota(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """Print the quota status."""
    from syncd.runtime import open_database, open_http
    from syncd.sync.codelocks.status import format_quota

    if settings.codelocks is None:
        print("syncd quota: Codelocks is not configured (no [codelocks] section)", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http:
        status = await quota_of(db, settings, http)
    print(json.dumps(status, default=str, indent=2) if args.json else
          "\n".join(format_quota(status)))
    return 0

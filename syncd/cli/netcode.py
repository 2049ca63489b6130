"""`syncd netcode issue|list`: issue Codelocks NetCodes through the ledger, and list what was issued."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from syncd.cli.help import add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config



def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `netcode issue` and `netcode list` to the CLI."""
    parser = add_command(
        subparsers, "netcode", "issue a Codelocks NetCode (recorded in the ledger; a repeat "
        "costs no call)", "syncd netcode issue --lock LOCK_ID --start '2026-01-31 09:00' "
        "--duration 2h", "syncd netcode list --json")
    actions = parser.add_subparsers(dest="netcode_action", required=True, metavar="ACTION")
    issue = add_command(actions, "issue", "issue a NetCode and print it",
                        "syncd netcode issue --lock LOCK_ID --start '2026-01-31 09:00' "
                        "--duration 2h",
                        "syncd netcode issue --lock 1234567890 --model KL1060 --identifier 42 "
                        "--start '2026-02-01 00:00' --duration 1d --json")
    issue.add_argument("--lock", required=True,
                       help="K3Connect lock id, or a KitLock's initialisation timecode")
    issue.add_argument("--start", required=True,
                       help='start in the lock\'s local time, "yyyy-MM-dd hh:mm" (hour codes on '
                            "the hour, day codes at 00:00; not before the current hour, or "
                            "today for day codes)")
    issue.add_argument("--duration", required=True,
                       help="duration id (0-18), or hours (1h-12h) or days (1d-7d)")
    issue.add_argument("--model", default="K3CONNECT",
                       help="lock model: K3CONNECT (default), KL1060, KL1060C2, KL1060G3, KL1550")
    issue.add_argument("--identifier", default=None,
                       help="KitLock only: the lock's numeric identifier")
    issue.add_argument("--json", action="store_true", help="print JSON")
    issue.set_defaults(func=issue_netcode)
    listing = add_command(actions, "list", "NetCodes issued (without the codes)",
                          "syncd netcode list", "syncd netcode list --json")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_netcodes)



async def issue_netcode(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Validate, then answer from the ledger or ask the vendor; print the code."""
    from syncd.actions.netcodes import NetCodeLedger, NetCodeRequestError, validate
    from syncd.runtime import open_database, open_http
    from syncd.sync.codelocks.jobs import K3Context

    if settings.codelocks is None:
        print("syncd netcode: Codelocks is not configured (no [codelocks] section)",
              file=sys.stderr)
        return 2
    try:
        request = validate(args.lock, args.start, args.duration, args.model, args.identifier)
    except NetCodeRequestError as err:
        print(f"syncd netcode: {err} (no call was made)", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http:
        try:
            issued = await NetCodeLedger(K3Context(db, settings.codelocks, http)).issue(
                request, operator())
        except NetCodeRequestError as err:  # a start in the past, a lock without its key
            print(f"syncd netcode: {err} (no call was made)", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps({"code": issued.code, "lock_id": request.lock, "model": request.model,
                          "start": request.start.isoformat(sep=" "),
                          "duration_id": request.duration_id,
                          "expires": issued.expires.isoformat(sep=" "),
                          "issued_at": issued.issued_at.isoformat(), "issued_by": issued.issued_by,
                          "from_ledger": issued.from_ledger}))
        return 0
    source = "from the ledger, no call made" if issued.from_ledger else "from Codelocks, 1 call"
    first = f"{issued.issued_at:%Y-%m-%d %H:%M}"
    print(f"{issued.code}\nlock {request.lock} from {request.start:%Y-%m-%d %H:%M} until "
          f"{issued.expires:%Y-%m-%d %H:%M} (lock time); first issued {first} UTC by "
          f"{issued.issued_by} ({source})")
    return 0


async def list_netcodes(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Print report.netcodes, newest first."""
    from syncd.runtime import open_database

    async with open_database(settings) as db, db.connection() as conn:
        rows = [dict(r) for r in await conn.fetch(
            "SELECT * FROM report.netcodes ORDER BY issued_at DESC")]
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    print(f"{'LOCK':<34} {'MODEL':<9} {'START':<17} {'DUR':>3} {'EXPIRES':<17} {'ISSUED BY':<16} "
          "REPEATS")
    for row in rows:
        print(f"{row['lock_id']:<34} {row['lock_model']:<9} {row['start']:%Y-%m-%d %H:%M} "
              f"{row['duration_id']:>3} {row['expires_at']:%Y-%m-%d %H:%M} "
              f"{row['issued_by']:<16} {row['repeats']}")
    return 0

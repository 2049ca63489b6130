"""`syncd terminals …`: list BioTime terminals as report.terminals shows them, and send commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from syncd.cli.help import add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
# (subcommand, actions.terminals.TerminalCommand value, help): values, so that building the
# parser imports no BioTime client.
_COMMANDS = (
    ("reboot", "reboot", "reboot terminals"),
    ("upload-transactions", "upload_transaction", "ask terminals to upload their punches"),
    ("upload-all", "upload_all", "ask terminals to upload all their data"),
    ("clear-commands", "clear_command", "drop terminals' pending commands"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `terminals list|reboot|upload-…|clear-commands|add|update|delete` to the CLI."""
    parser = add_command(subparsers, "terminals", "BioTime terminals: list them, send commands",
                         "syncd terminals list --json", "syncd terminals reboot SN1 SN2 --dry-run")
    actions = parser.add_subparsers(dest="terminals_action", required=True, metavar="ACTION")
    listing = add_command(actions, "list", "terminals with state, online and expected",
                          "syncd terminals list", "syncd terminals list --json | jq '.[].sn'")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_terminals)
    for name, command, text in _COMMANDS:
        action = add_command(actions, name, f"{text} (by serial number)",
                             f"syncd terminals {name} CJDE193560021 --dry-run",
                             f"syncd terminals {name} CJDE193560021 CJDE193560022 --yes")
        action.add_argument("sns", nargs="+", metavar="SN", help="terminal serial numbers")
        action.add_argument("--requested-by", default=None,
                            help="who asks, for the command ledger (default: cli:<user>)")
        action.add_argument("--dry-run", action="store_true",
                            help="say which terminals would get the command, send nothing")
        action.add_argument("--yes", action="store_true",
                            help="no confirmation (asked for clear-commands and bulk reboots)")
        action.set_defaults(func=send, terminal_command=command)
    add = add_command(actions, "add", "register a terminal in BioTime (logged)",
                      "syncd terminals add CJDE193560021 --alias 'Front door' --ip 10.0.4.21 "
                      "--area-id 2")
    add.add_argument("sn", metavar="SN")
    add.add_argument("--alias", required=True)
    add.add_argument("--ip", required=True, help="the terminal's IP address")
    add.add_argument("--area-id", type=int, default=None, help="BioTime area id")
    add.add_argument("--tz", type=int, default=None, help="terminal time zone (hours)")
    add.set_defaults(func=manage, manage_action="create")
    update = add_command(actions, "update", "change a terminal's alias, IP or area (logged)",
                         "syncd terminals update CJDE193560021 --alias 'Back door'")
    update.add_argument("sn", metavar="SN")
    update.add_argument("--alias", default=None)
    update.add_argument("--ip", default=None, help="the terminal's IP address")
    update.add_argument("--area-id", type=int, default=None, help="BioTime area id")
    update.add_argument("--tz", type=int, default=None, help="terminal time zone (hours)")
    update.set_defaults(func=manage, manage_action="update")
    delete = add_command(actions, "delete", "delete a terminal from BioTime (logged; asks, "
                         "or --yes)", "syncd terminals delete CJDE193560021 --yes")
    delete.add_argument("sn", metavar="SN")
    delete.add_argument("--yes", action="store_true", help="delete without asking")
    delete.set_defaults(func=manage, manage_action="delete")


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))


def _when(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return "-" if value is None else value.astimezone(zone).isoformat(sep=" ", timespec="seconds")


async def list_terminals(args: argparse.Namespace, settings: config.Settings,
                         redactor: Redactor) -> int:
    """Print report.terminals: sn, alias, area, state, online, last activity, expected, status."""
    from syncd.db.biotime import terminals_report
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        rows = await terminals_report(db)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], default=str, indent=2))
        return 0
    zone = ZoneInfo(settings.biotime.timezone if settings.biotime else "UTC")
    print(f"{'SN':<16} {'ALIAS':<24} {'AREA':<18} {'STATE':>5} {'ONLINE':<6} "
          f"{'LAST ACTIVITY':<25} {'EXPECTED':<8} STATUS")
    for row in rows:
        alias = row.alias if row.alias is not None else row.expected_alias
        print(f"{_clean(row.sn):<16} {_clean(alias)[:24]:<24} {_clean(row.area_name)[:18]:<18} "
              f"{_clean(row.state):>5} {'yes' if row.online else 'no':<6} "
              f"{_when(row.last_activity, zone):<25} {'yes' if row.expected else 'no':<8} "
              f"{row.status}")
    return 0


async def manage(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """`terminals add|update|delete SN`: call BioTime, log the outcome in the action log."""
    from syncd.cli.confirm import confirmed
    from syncd.db.actions import record_action
    from syncd.errors import VendorError
    from syncd.runtime import open_database, open_http
    from syncd.sync.biotime import biotime_client

    if settings.biotime is None:
        print("syncd terminals: BioTime is not configured (no [biotime] section)", file=sys.stderr)
        return 2
    action = f"terminal.{args.manage_action}"
    if args.manage_action == "delete" and not await confirmed(
            f"Delete terminal {_clean(args.sn)} from BioTime?", yes=args.yes,
            refusal="syncd terminals delete: not deleted"):
        return 1
    asked = {k: v for k, v in (("alias", getattr(args, "alias", None)),
                               ("ip_address", getattr(args, "ip", None)),
                               ("area", getattr(args, "area_id", None)),
                               ("terminal_tz", getattr(args, "tz", None))) if v is not None}
    async with open_database(settings) as db, open_http() as http:
        client = biotime_client(settings.biotime, http)
        try:
            if args.manage_action == "create":
                done = await client.create_terminal(args.sn, args.alias, args.ip,
                                                    area=args.area_id, terminal_tz=args.tz)
                detail = {"terminal_id": done.id, **asked}
            else:
                found = [t async for t in client.iter_terminals(sn=args.sn) if t.sn == args.sn]
                if not found:
                    print(f"syncd terminals: BioTime lists no terminal {_clean(args.sn)}",
                          file=sys.stderr)
                    return 1
                current = found[0]
                detail = {"terminal_id": current.id, **asked}
                if args.manage_action == "delete":
                    await client.delete_terminal(current.id)
                else:
                    await client.update_terminal(
                        current.id, current.sn, args.alias or current.alias or current.sn,
                        args.ip or current.ip_address or "",
                        area=args.area_id if args.area_id is not None else
                        (current.area.id if current.area else None),
                        terminal_tz=args.tz if args.tz is not None else current.terminal_tz)
        except (VendorError, ValueError) as err:
            message = redactor.scrub(str(err))
            await record_action(db, actor=operator(), action=action, subject=args.sn,
                                outcome="failed", provider="biotime",
                                detail={**asked, "error": message[:500]})
            print(f"{_clean(args.sn)}: {action} failed: {message}", file=sys.stderr)
            return 1
        await record_action(db, actor=operator(), action=action, subject=args.sn, outcome="ok",
                            provider="biotime", detail=detail)
    print(f"{_clean(args.sn)}: {action} ok")
    return 0



async def send(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Send one terminal command to each SN; print each outcome; exit 1 if any failed."""
    from syncd.actions.terminals import TerminalCommand, send_command
    from syncd.cli.confirm import confirmed
    from syncd.runtime import open_database, open_http
    from syncd.sync.biotime import biotime_client

    if settings.biotime is None:
        print("syncd terminals: BioTime is not configured (no [biotime] section)", file=sys.stderr)
        return 2
    command = TerminalCommand(args.terminal_command)
    what = f"{command.value} to {len(args.sns)} terminal(s): {' '.join(args.sns)}"
    if args.dry_run:
        print(f"dry run: would send {_clean(what)}")
        return 0
    destructive = command is TerminalCommand.CLEAR_COMMAND or (
        command is TerminalCommand.REBOOT and len(args.sns) > 1)
    if destructive and not await confirmed(f"Send {_clean(what)}?", yes=args.yes,
                                           refusal="syncd terminals: nothing sent"):
        return 1
    async with open_database(settings) as db, open_http() as http:
        outcomes = await send_command(db, biotime_client(settings.biotime, http),
                                      command, args.sns,
                                      requested_by=args.requested_by or operator(),
                                      scrub=redactor.scrub)
    for outcome in outcomes:
        status = "ok" if outcome.ok else f"failed: {outcome.error}"
        print(f"{_clean(outcome.sn)}: {outcome.command.value} {status}")
    return 0 if all(o.ok for o in outcomes) else 1

"""`syncd devices ban|unban|show MAC`: the app device registry's bans, each in the action log."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

from syncd.cli.help import add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # app-sent text must not drive the terminal


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `devices ban|unban|show` to the CLI."""
    parser = add_command(
        subparsers, "devices", "the app device registry: ban, unban, show a device (by MAC: "
        "any separators, any case)",
        "syncd devices ban a1:b2:c3:d4:e5:f6 --reason 'fraud case 1234'",
        "syncd devices show a1b2c3d4e5f6")
    actions = parser.add_subparsers(dest="devices_action", required=True, metavar="ACTION")
    for name, text, example in (
            ("ban", "refuse the device's registrations with device_banned",
             "syncd devices ban a1:b2:c3:d4:e5:f6 --reason 'fraud case 1234' --yes"),
            ("unban", "lift the device's ban",
             "syncd devices unban a1:b2:c3:d4:e5:f6 --reason 'case closed'")):
        action = add_command(actions, name, text, example)
        action.add_argument("mac", metavar="MAC")
        action.add_argument("--reason", required=True, help="why (kept in the action log)")
        if name == "ban":
            action.add_argument("--yes", action="store_true",
                                help="ban without asking (needed when there is no terminal)")
            action.add_argument("--dry-run", action="store_true",
                                help="say what would be banned, change nothing")
        action.set_defaults(func=change_ban, ban=name == "ban")
    show = add_command(actions, "show", "the device, its ban, history and actions",
                       "syncd devices show A1-B2-C3-D4-E5-F6 --json")
    show.add_argument("mac", metavar="MAC")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_device)



def _mac(raw: str) -> str | None:
    from syncd.registry.validate import PLACEHOLDER_MACS, normalise_mac

    mac = normalise_mac(raw)
    if mac is None or mac in PLACEHOLDER_MACS:
        print(f"syncd devices: {_clean(raw)!r} is not a device MAC address (12-64 hex digits, "
              "separators allowed; not a placeholder)", file=sys.stderr)
        return None
    return mac


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))


async def change_ban(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """Ban or unban one MAC; print what changed; exit 2 for a malformed MAC.

    A ban asks first (or takes --yes); --dry-run says what it would change.
    """
    from syncd.cli.confirm import confirmed, unaskable
    from syncd.registry import store
    from syncd.runtime import open_database

    mac = _mac(args.mac)
    if mac is None:
        return 2
    reason = args.reason.strip()
    if not reason:
        print("syncd devices: --reason must not be empty", file=sys.stderr)
        return 2
    refusal = "syncd devices ban: not banned"
    asks = args.ban and not args.dry_run
    if asks and unaskable(args.yes, refusal):
        return 1
    async with open_database(settings) as db:
        if args.ban and (args.dry_run or not args.yes):
            view = await store.show(db, mac)
            state = "registered" if view.device else \
                "not registered yet: the ban applies when it registers"
            if view.ban is not None:  # nothing would change: nothing to ask
                state = "already banned; nothing would change"
            if args.dry_run:
                print(f"dry run: would ban {mac} ({state}), reason {_clean(reason)!r}; its "
                      "registrations would be refused with device_banned\nnothing changed")
                return 0
            if view.ban is None and not await confirmed(
                    f"Ban {mac} ({state})? Its registrations will be refused with "
                    "device_banned until `syncd devices unban`.", yes=args.yes, refusal=refusal):
                return 1
        if args.ban:
            changed = await store.ban(db, mac, reason=reason, actor=operator())
            known = (await store.show(db, mac)).device is not None
        else:
            changed = await store.unban(db, mac, reason=reason, actor=operator())
            known = True
    verb = "banned" if args.ban else "unbanned"
    if changed:
        print(f"{mac}: {verb}" + ("" if known else " (not registered yet: the ban applies when "
                                                    "it registers)"))
    else:
        print(f"{mac}: already {'banned' if args.ban else 'not banned'}; nothing changed")
    return 0


async def show_device(args: argparse.Namespace, settings: config.Settings,
                      redactor: Redactor) -> int:
    """Print the device, its ban, its history and the actions on it; exit 1 if nothing is known."""
    from syncd.registry import store
    from syncd.runtime import open_database

    mac = _mac(args.mac)
    if mac is None:
        return 2
    async with open_database(settings) as db:
        view = await store.show(db, mac)
    if args.json:
        print(json.dumps({"mac_address": mac, "device": view.device, "ban": view.ban,
                          "history": view.history,
                          "actions": [a.__dict__ for a in view.actions]}, default=str, indent=2))
        return 0 if view.device or view.ban or view.actions else 1
    if view.device is None and view.ban is None and not view.actions:
        print(f"{mac}: unknown (never registered, never banned)")
        return 1
    print(f"mac_address: {mac}")
    if view.device:
        d = view.device
        for key in ("device_os", "device_version", "device_type", "app_version", "app_name",
                    "status"):
            print(f"{key + ':':<15} {_clean(d[key])}")
        print(f"first seen:     {store.when(d['first_seen_at'])}\n"
              f"last seen:      {store.when(d['last_seen_at'])}\n"
              f"updated:        {store.when(d['updated_at'])}")
    else:
        print("not registered")
    if view.ban:
        print(f"BANNED since {store.when(view.ban['banned_at'])} by {_clean(view.ban['banned_by'])}"
              f": {_clean(view.ban['reason'])}")
    else:
        print("not banned")
    if view.history:
        print("\nhistory (newest first):")
        for h in view.history:
            print(f"  {store.when(h['changed_at'])} {h['change']:<10} {_clean(h['app_name'])} "
                  f"{_clean(h['app_version'])} on {_clean(h['device_os'])} "
                  f"{_clean(h['device_version'])} ({_clean(h['device_type'])})")
    if view.actions:
        print("\nactions (newest first):")
        for a in view.actions:
            print(f"  {store.when(a.at)} {a.action} {a.outcome} by {_clean(a.actor)}: "
                  f"{_clean(a.detail.get('reason'))}")
    return 0

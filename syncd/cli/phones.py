"""`syncd phones …`: show a phone, act on it at NeoLock or Knox Guard, upload device lists.

Every action re-reads the device, refuses a state that does not allow it (naming the state) and
is recorded in the action log (`syncd audit verify`, view report.actions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.cli.help import add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
PROVIDERS = ("knoxguard", "neolock")
ACTIONS = {
    "lock": "lock a phone (optionally showing a message and a contact)",
    "unlock": "unlock a locked phone",
    "complete": "release a phone from Knox Guard for good (the loan is paid)",
    "message": "show a message on a phone",
    "approve": "accept a Pending phone",
    "blink": "start the blinking payment reminder (Knox Guard tenants)",
}


# Actions a customer feels at once and an operator cannot simply take back: asked first.
CONFIRM = frozenset({"lock", "unlock", "complete", "delete"})  # hard to undo: asked first
EXAMPLES = {
    "lock": ("syncd phones lock 356938035643809 --message 'Payment overdue' --tel +998901234567",
             "syncd phones lock 356938035643809 --dry-run"),
    "unlock": ("syncd phones unlock 356938035643809 --yes",),
    "complete": ("syncd phones complete R58N12ABCDE --provider knoxguard",),
    "message": ("syncd phones message 356938035643809 --message 'Payment due on the 5th'",),
    "approve": ("syncd phones approve 356938035643809 --approve-id LOAN-1234",),
    "blink": ("syncd phones blink R58N12ABCDE --interval 3600 --message 'Payment due' "
              "--tel +998901234567 --time-limit 23,7",),
}


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))



def _pair(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 23,7 (got {text!r})") from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `phones show|lock|unlock|complete|message|approve|blink|upload` to the CLI."""
    parser = add_command(subparsers, "phones", "NeoLock and Knox Guard phones: show, act, upload",
                         "syncd phones show 356938035643809",
                         "syncd phones lock 356938035643809 --message 'Payment overdue' "
                         "--tel +998901234567")
    actions = parser.add_subparsers(dest="phones_action", required=True, metavar="ACTION")
    show = add_command(actions, "show", "a phone as report.phones shows it, and its actions",
                       "syncd phones show 356938035643809 --json")
    show.add_argument("uid", metavar="UID", help="device id (IMEI or serial number)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_phone)
    for name, text in ACTIONS.items():
        p = add_command(actions, name, text, *EXAMPLES.get(name, ()))
        p.add_argument("uid", metavar="UID", help="device id (IMEI or serial number)")
        p.add_argument("--provider", choices=PROVIDERS,
                       help="where the phone lives (needed when both or neither list it)")
        if name in ("lock", "message", "blink", "unlock"):
            p.add_argument("--message", required=name in ("message", "blink"),
                           help="text shown on the phone (at most 200 characters)")
        if name in ("lock", "message", "blink", "unlock"):
            p.add_argument("--tel", help="phone number shown for the customer to call")
            p.add_argument("--email", help="email address shown for the customer to write to")
        if name == "approve":
            p.add_argument("--approve-id", help="your id for the device (at most 50 characters)")
            p.add_argument("--comment", help="approval comment (at most 1000 characters)")
        if name == "blink":
            p.add_argument("--interval", type=int, required=True,
                           help="seconds between reminders (3 to 86400)")
            p.add_argument("--time-limit", type=_pair, metavar="FROM,TO",
                           help="hours without reminders, e.g. 23,7")
            p.add_argument("--days-limit", type=_pair, metavar="FROM,TO",
                           help="weekdays without reminders (0 = Sunday), e.g. 0,1; "
                                "needs --time-limit")
        p.add_argument("--dry-run", action="store_true",
                       help="print what would be sent (provider, parameters, last synced "
                            "state), send nothing")
        if name in CONFIRM:
            p.add_argument("--yes", action="store_true",
                           help="send without asking (needed when there is no terminal)")
        p.set_defaults(func=act, phone_action=name)
    up = add_command(actions, "upload", "upload devices (CSV, or one IMEI/serial a line)",
                     "syncd phones upload --provider knoxguard devices.csv")
    up.add_argument("file", metavar="FILE", type=Path)
    up.add_argument("--provider", choices=PROVIDERS, required=True)
    up.add_argument("--auto-accept", action="store_true",
                    help="accept the devices at once (needs the role at the vendor)")
    up.set_defaults(func=upload_file)
    from syncd.cli.phones_admin import add_admin_parsers  # it uses this module's helpers

    add_admin_parsers(actions)


@contextlib.asynccontextmanager
async def _vendors(settings: config.Settings) -> AsyncIterator[dict[str, Any]]:
    """The configured providers' clients, by provider name."""
    from syncd.runtime import open_http
    from syncd.sync.knoxguard import knoxguard_client
    from syncd.sync.neolock import neolock_client

    async with open_http() as http:
        clients: dict[str, Any] = {}
        if settings.knoxguard is not None:
            clients["knoxguard"] = knoxguard_client(settings.knoxguard, http)
        if settings.neolock is not None:
            clients["neolock"] = neolock_client(settings.neolock, http)
        yield clients


async def show_phone(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """Print the phone's report.phones rows and its latest logged actions."""
    from syncd.db.actions import actions_for
    from syncd.db.phone_lookup import phone_rows
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        rows = await phone_rows(db, args.uid)
        history = await actions_for(db, args.uid, 10)
    if args.json:
        print(json.dumps({"phones": [r.__dict__ for r in rows],
                          "actions": [a.__dict__ for a in history]}, default=str, indent=2))
        return 0 if rows else 1
    if not rows:
        print(f"syncd phones: no provider lists {_clean(args.uid)} (as of the last sync)",
              file=sys.stderr)
        return 1
    for row in rows:
        print(f"{_clean(row.provider)} {_clean(row.device_uid)}\n"
              f"  state:          {_clean(row.vendor_state)} (console: {_clean(row.console_state)})"
              f"\n  imei / imei2:   {_clean(row.imei)} / {_clean(row.imei2)}\n"
              f"  object id:      {_clean(row.object_id)}\n"
              f"  license expiry: {_clean(row.license_expiry)}\n"
              f"  contract wants: {_clean(row.desired_state)}"
              f"{'  (IN DRIFT)' if row.in_drift else ''}\n"
              f"  last seen:      {_clean(row.last_seen_at)}"
              + (f"\n  gone since:     {_clean(row.gone_at)}" if row.gone_at else ""))
    if history:
        print("actions:")
        for a in history:
            print(f"  {a.at:%Y-%m-%d %H:%M:%S} {_clean(a.actor)} {_clean(a.action)} "
                  f"{_clean(a.provider)} {a.outcome}")
    return 0


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from syncd.vendors.knoxguard import Blink

    keys = ("message", "tel", "email", "approve_id", "comment")
    params = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if args.phone_action == "blink":
        params["blink"] = Blink.checked(
            device_uid=args.uid, interval=args.interval, message=args.message, tel=args.tel,
            email=args.email, time_limit=args.time_limit, days_limit=args.days_limit,
            time_limit_enable=args.time_limit is not None and args.days_limit is None,
            days_limit_enable=args.days_limit is not None)
    return params


def _sending(args: argparse.Namespace, provider: str, params: dict[str, Any]) -> str:
    """The action, device, provider and parameters as they would be sent."""
    shown = params["blink"].body() if "blink" in params else params
    fields = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in shown.items())
    return _clean(f"{args.phone_action} of {args.uid} to {provider} "
                  f"({fields or 'no parameters'})")


async def act(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Run one action on one phone; print its outcome; exit 1 unless it was sent.

    lock, unlock and complete ask first (or take --yes); --dry-run prints what would be sent.
    """
    from syncd.actions.phones import (
        ALLOWED,
        KnoxVendor,
        NeoLockVendor,
        PhoneVendor,
        check_possible,
        console,
        perform,
        resolve_provider,
    )
    from syncd.cli.confirm import confirmed, unaskable
    from syncd.db.phone_lookup import phone_rows
    from syncd.runtime import open_database

    action = args.phone_action
    refusal = f"syncd phones {action}: nothing sent"
    asks = action in CONFIRM and not args.dry_run
    params = _params(args)  # a blink that breaks the documented rules stops here, unsent
    if asks and unaskable(args.yes, refusal):
        return 1
    configured = [p for p in PROVIDERS if getattr(settings, p) is not None]
    async with open_database(settings) as db:
        provider = await resolve_provider(db, args.uid, args.provider)
        check_possible(provider, action, configured)
        sending = _sending(args, provider, params)
        if args.dry_run:
            stored = next((r.vendor_state for r in await phone_rows(db, args.uid)
                           if r.provider == provider), None)
            verdict = "allowed" if stored in ALLOWED[action] else \
                f"{action} needs one of {', '.join(sorted(ALLOWED[action]))}"
            print(f"dry run: would send {sending}\n  last synced state: {_clean(stored)} "
                  f"(console: {console(stored)}): {verdict}; syncd re-reads the device before "
                  "it sends\nnothing sent")
            return 0
        if asks and not await confirmed(f"Send {sending}?", yes=args.yes, refusal=refusal):
            return 1
        async with _vendors(settings) as clients:
            vendors: dict[str, PhoneVendor] = {}
            if "knoxguard" in clients:
                vendors["knoxguard"] = KnoxVendor(clients["knoxguard"])
            if "neolock" in clients:
                vendors["neolock"] = NeoLockVendor(clients["neolock"])
            outcome = await perform(db, vendors, args.uid, action, actor=operator(),
                                    provider=provider, params=params, scrub=redactor.scrub)
    print(f"{_clean(outcome.device_uid)} at {outcome.provider}: {outcome.action} {outcome.outcome}"
          f" ({_clean(outcome.message)}); logged as #{outcome.seq}")
    return 0 if outcome.outcome == "ok" else 1


async def upload_file(args: argparse.Namespace, settings: config.Settings,
                      redactor: Redactor) -> int:
    """Upload the file's device ids; invalid lines stop the upload and are listed by number."""
    from syncd.actions.phones import parse_upload, upload, uploader
    from syncd.runtime import open_database

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        print(f"syncd phones upload: cannot read {args.file}: {err}", file=sys.stderr)
        return 2
    parsed = parse_upload(text.splitlines())
    for number, line, why in parsed.invalid:
        print(f"{args.file}:{number}: {why}: {_clean(line)!r}", file=sys.stderr)
    if parsed.invalid:
        print(f"syncd phones upload: {len(parsed.invalid)} invalid line(s); nothing uploaded",
              file=sys.stderr)
        return 1
    if not parsed.uids:
        print(f"syncd phones upload: {args.file} holds no device ids", file=sys.stderr)
        return 1
    async with open_database(settings) as db, _vendors(settings) as clients:
        client = clients.get(args.provider)
        if client is None:
            print(f"syncd phones upload: {args.provider} is not configured", file=sys.stderr)
            return 2
        outcomes = await upload(db, args.provider, uploader(client, auto_accept=args.auto_accept),
                                parsed.uids, actor=operator(), scrub=redactor.scrub)
    failed = False
    for o in outcomes:
        if o.error:
            print(f"upload of {o.sent} device(s) failed: {_clean(o.error)} (logged as #{o.seq})")
            failed = True
            continue
        print(f"upload {_clean(o.upload_id)}: {o.sent} sent, {_clean(o.valid)} accepted, "
              f"{len(o.invalid)} refused (logged as #{o.seq})")
        for uid, reason in o.invalid:
            print(f"  refused {_clean(uid)}: {_clean(reason)}")
            failed = True
    return 1 if failed else 0

"""`syncd phones …`: show a phone, act on it at NeoLock or Knox Guard, upload device lists.

Every action re-reads the device, refuses a state that does not allow it (naming the state) and
is recorded in the action log (`syncd audit verify`, view report.actions).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command

if TYPE_CHECKING:
    from syncd.actions.phones import TransactionOutcome
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


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment (e.g. a container)
        return "cli"


def _pair(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 23,7 (got {text!r})") from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `phones show|lock|unlock|complete|message|approve|blink|upload` to the CLI."""
    parser = subparsers.add_parser(
        "phones", help="NeoLock and Knox Guard phones: show, act, upload",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  syncd phones show 356938035643809\n"
               "  syncd phones lock 356938035643809 --message 'Payment overdue' --tel +998901234567")
    actions = parser.add_subparsers(dest="phones_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="a phone as report.phones shows it, and its actions")
    show.add_argument("uid", metavar="UID", help="device id (IMEI or serial number)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_phone)
    for name, text in ACTIONS.items():
        p = actions.add_parser(name, help=text)
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
        p.set_defaults(func=act, phone_action=name)
    up = actions.add_parser("upload", help="upload devices (CSV, or one IMEI/serial a line)")
    up.add_argument("file", metavar="FILE", type=Path)
    up.add_argument("--provider", choices=PROVIDERS, required=True)
    up.add_argument("--auto-accept", action="store_true",
                    help="accept the devices at once (needs the role at the vendor)")
    up.set_defaults(func=upload_file)
    _add_admin_parsers(actions)


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


async def act(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Run one action on one phone; print its outcome; exit 1 unless it was sent."""
    from syncd.actions.phones import KnoxVendor, NeoLockVendor, PhoneVendor, perform
    from syncd.runtime import open_database

    params = _params(args)  # a blink that breaks the documented rules stops here, unsent
    async with open_database(settings) as db, _vendors(settings) as clients:
        vendors: dict[str, PhoneVendor] = {}
        if "knoxguard" in clients:
            vendors["knoxguard"] = KnoxVendor(clients["knoxguard"])
        if "neolock" in clients:
            vendors["neolock"] = NeoLockVendor(clients["neolock"])
        outcome = await perform(db, vendors, args.uid, args.phone_action, actor=_user(),
                                provider=args.provider, params=params, scrub=redactor.scrub)
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
                                parsed.uids, actor=_user(), scrub=redactor.scrub)
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


# --- delete, the asynchronous variants and their transactions (Knox Guard) ---------------------

ASYNC_ACTIONS = ("approve", "lock", "unlock", "complete", "message", "blink", "delete")
CONFIRM = frozenset({"lock", "unlock", "complete", "delete"})  # hard to undo: asked first
ROUTES = {"message": "sendMessage"}  # the vendor's path name where it differs
IMEI = "356938035643809"


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 1 to 3600 (got {text!r})")
    return value


def _asking(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do it without asking")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be sent; send nothing (not even the re-read)")


def _add_admin_parsers(actions: SubParsers[argparse.ArgumentParser]) -> None:
    """`phones delete`, `phones async ACTION` and `phones transaction`."""
    delete = add_command(actions, "delete", "delete a phone from the tenant (asks first; it must "
                                            "be Pending, Rejected, Accepted or Completed)",
                         f"syncd phones delete {IMEI} --dry-run",
                         f"syncd phones delete {IMEI} --provider knoxguard --yes")
    delete.add_argument("uid", metavar="UID", help="device id (IMEI or serial number)")
    delete.add_argument("--provider", choices=PROVIDERS,
                        help="where the phone lives (needed when both or neither list it)")
    _asking(delete)
    delete.set_defaults(func=admin_act, phone_action="delete", asynchronous=False)
    run = add_command(actions, "async", "send a Knox Guard action's asynchronous variant and "
                                        "(with --wait) poll its transaction to the end",
                      f"syncd phones async lock {IMEI} --message 'Payment overdue' "
                      "--tel +998901234567 --wait --yes",
                      f"syncd phones async delete {IMEI} --wait --timeout 120")
    run.add_argument("phone_action", metavar="ACTION", choices=ASYNC_ACTIONS,
                     help=", ".join(ASYNC_ACTIONS))
    run.add_argument("uid", metavar="UID", help="device id (IMEI or serial number)")
    run.add_argument("--message", help="text shown on the phone (lock, message, blink)")
    run.add_argument("--tel", help="phone number shown for the customer to call")
    run.add_argument("--email", help="email address shown for the customer to write to")
    run.add_argument("--approve-id", help="approve: your id for the device (at most 50)")
    run.add_argument("--comment", help="approve: comment (at most 1000 characters)")
    run.add_argument("--interval", type=int, help="blink: seconds between reminders (3..86400)")
    run.add_argument("--time-limit", type=_pair, metavar="FROM,TO",
                     help="blink: hours without reminders, e.g. 23,7")
    run.add_argument("--days-limit", type=_pair, metavar="FROM,TO",
                     help="blink: weekdays without reminders (0 = Sunday), e.g. 0,1")
    run.add_argument("--wait", action="store_true",
                     help="poll the transaction until every device has its result")
    run.add_argument("--timeout", type=_timeout, default=60.0, metavar="SECONDS",
                     help="how long --wait polls (1-3600, default 60)")
    _asking(run)
    run.set_defaults(func=admin_act, asynchronous=True, provider="knoxguard")
    txn = add_command(actions, "transaction", "the result of an asynchronous Knox Guard request "
                                              "(logged once it is done)",
                      "syncd phones transaction 5f0c2a9e41d84b7c --wait",
                      "syncd phones transaction 5f0c2a9e41d84b7c --json")
    txn.add_argument("transaction_id", metavar="TRANSACTION", help="the id `phones async` printed")
    txn.add_argument("--wait", action="store_true", help="poll until it is done")
    txn.add_argument("--timeout", type=_timeout, default=60.0, metavar="SECONDS",
                     help="how long --wait polls (1-3600, default 60)")
    txn.add_argument("--json", action="store_true", help="print JSON")
    txn.set_defaults(func=show_transaction)


def _request_line(settings: config.Settings, provider: str, action: str, uid: str,
                  params: dict[str, Any], asynchronous: bool) -> str:
    """What would be sent: method, URL and body (as the action log records it)."""
    route = ROUTES.get(action, action) + ("Async" if asynchronous else "")
    if provider == "knoxguard" and settings.knoxguard is not None:
        url = f"{settings.knoxguard.api_url.rstrip('/')}/devices/{route}"
    elif settings.neolock is not None:
        url = f"{str(settings.neolock.base_url).rstrip('/')}/clients/devices/{route}"
    else:
        url = route
    body: dict[str, Any] = {"deviceUid": uid}
    body.update({k: v for k, v in params.items() if k not in ("blink", "asynchronous")})
    if "blink" in params:
        body = params["blink"].body()
    return f"POST {url} {_clean(json.dumps(body))}"


def _wait_line(done: TransactionOutcome) -> str:
    return (f"transaction {_clean(done.transaction_id)}: {done.outcome} "
            f"({_clean(done.message)})" + (f"; logged as #{done.seq}" if done.seq else ""))


EXIT = {"ok": 0, "pending": 3}  # else 1: refused or failed


async def admin_act(args: argparse.Namespace, settings: config.Settings,
                    redactor: Redactor) -> int:
    """`phones delete` and `phones async ACTION`: show, ask where it is hard to undo, act, log;
    with --wait, poll the transaction and log its end (exit 3 if it is not done in time)."""
    from syncd.actions.phones import (
        ALLOWED,
        KnoxVendor,
        NeoLockVendor,
        PhoneVendor,
        console,
        finish_transaction,
        perform,
        resolve_provider,
    )
    from syncd.cli.confirm import confirm
    from syncd.db.phone_lookup import phone_rows
    from syncd.runtime import open_database

    action, uid, prog = args.phone_action, args.uid, f"syncd phones {args.phone_action}"
    if args.asynchronous:
        prog = f"syncd phones async {action}"
        needs = {"message": ("message",), "blink": ("message", "interval")}.get(action, ())
        missing = [n for n in needs if getattr(args, n) is None]
        if missing:
            print(f"{prog}: needs --{' and --'.join(missing)} (nothing sent)", file=sys.stderr)
            return 2
    params = _params(args)  # a blink that breaks the documented rules stops here, unsent
    if args.asynchronous:
        params["asynchronous"] = True
    async with open_database(settings) as db, _vendors(settings) as clients:
        provider = await resolve_provider(db, uid, args.provider)
        if provider not in clients:
            print(f"{prog}: {provider} is not configured (no [{provider}] section)",
                  file=sys.stderr)
            return 2
        stored = next((r.vendor_state for r in await phone_rows(db, uid)
                       if r.provider == provider), None)
        allowed = ", ".join(sorted(ALLOWED[action]))
        print(f"{action}{' (asynchronous)' if args.asynchronous else ''} {_clean(uid)} at "
              f"{provider}: {_clean(stored)} (console: {_clean(console(stored))}) as of the last "
              f"sync; {action} needs one of {allowed} (re-read before sending)")
        request = _request_line(settings, provider, action, uid, params, args.asynchronous)
        if args.dry_run:
            print(f"would send: {request}\nnothing sent (--dry-run)")
            return 0
        if action in CONFIRM and not args.yes and not confirm(
                f"{action.capitalize()} {uid} at {provider}?"):
            print(f"{prog}: nothing sent (confirm, or pass --yes)", file=sys.stderr)
            return 1
        vendors: dict[str, PhoneVendor] = {}
        if "knoxguard" in clients:
            vendors["knoxguard"] = KnoxVendor(clients["knoxguard"])
        if "neolock" in clients:
            vendors["neolock"] = NeoLockVendor(clients["neolock"])
        outcome = await perform(db, vendors, uid, action, actor=_user(), provider=provider,
                                params=params, scrub=redactor.scrub)
        print(f"{_clean(outcome.device_uid)} at {outcome.provider}: {outcome.action} "
              f"{outcome.outcome} ({_clean(outcome.message)}); logged as #{outcome.seq}")
        if outcome.outcome != "ok":
            return 1
        if not (args.asynchronous and outcome.transaction_id):
            return 0
        if not args.wait:
            print(f"follow it with: syncd phones transaction {outcome.transaction_id} --wait")
            return 0
        done = await finish_transaction(db, clients["knoxguard"], outcome.transaction_id,
                                        actor=_user(), timeout=args.timeout, device_uid=uid,
                                        action=action, scrub=redactor.scrub)
    print(_wait_line(done))
    return EXIT.get(done.outcome, 1)


async def show_transaction(args: argparse.Namespace, settings: config.Settings,
                           redactor: Redactor) -> int:
    """Read a Knox Guard transaction (polling with --wait); log its result once it is done."""
    from syncd.actions.phones import finish_transaction
    from syncd.runtime import open_database

    async with open_database(settings) as db, _vendors(settings) as clients:
        client = clients.get("knoxguard")
        if client is None:
            print("syncd phones transaction: knoxguard is not configured (no [knoxguard] "
                  "section)", file=sys.stderr)
            return 2
        done = await finish_transaction(db, client, args.transaction_id, actor=_user(),
                                        timeout=args.timeout if args.wait else 0.0,
                                        scrub=redactor.scrub)
    if args.json:
        print(json.dumps({"transaction_id": done.transaction_id, "outcome": done.outcome,
                          "message": done.message, "logged_as": done.seq,
                          "result": None if done.result is None else
                          done.result.model_dump(mode="json", by_alias=True)}, indent=2))
    else:
        print(_wait_line(done))
    return EXIT.get(done.outcome, 1)

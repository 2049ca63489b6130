"""`syncd phones delete|async|transaction`: Knox Guard administration — deleting a device, the
asynchronous variants of its actions, and reading their transactions."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command

if TYPE_CHECKING:
    from syncd.actions.phones import TransactionOutcome
    from syncd.logs import Redactor
    from syncd.settings import core as config
from syncd.cli.operator import operator
from syncd.cli.phones import (
    CONFIRM,
    PROVIDERS,
    _clean,
    _pair,
    _params,
    _vendors,
)

ASYNC_ACTIONS = ("approve", "lock", "unlock", "complete", "message", "blink", "delete")
ROUTES = {"message": "sendMessage"}  # the vendor's path name where it differs
IMEI = "356938035643809"  # the examples' device


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


def add_admin_parsers(actions: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `phones delete`, `phones async ACTION` and `phones transaction` to `phones`."""
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
    from syncd.cli.confirm import confirmed
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
        if action in CONFIRM and not await confirmed(
                f"{action.capitalize()} {uid} at {provider}?", yes=args.yes,
                refusal=f"{prog}: nothing sent"):
            return 1
        vendors: dict[str, PhoneVendor] = {}
        if "knoxguard" in clients:
            vendors["knoxguard"] = KnoxVendor(clients["knoxguard"])
        if "neolock" in clients:
            vendors["neolock"] = NeoLockVendor(clients["neolock"])
        outcome = await perform(db, vendors, uid, action, actor=operator(), provider=provider,
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
                                        actor=operator(), timeout=args.timeout, device_uid=uid,
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
        done = await finish_transaction(db, client, args.transaction_id, actor=operator(),
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

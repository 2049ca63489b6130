"""`syncd k3 clients …`: Codelocks smartphone clients: list them, add, suspend, unsuspend, delete.

A change shows its cost in Utility calls and the operator reserve left, then asks (or `--yes`;
`--dry-run` shows what would be sent and spends nothing). The work is syncd/actions/k3clients.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.actions.k3clients import ChangeOutcome, ChangePlan
    from syncd.logs import Redactor
    from syncd.settings import core as config

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
LOCK = "LOCK_ID"
CHANGES = {
    "add": "invite a registered K3 Connect user as a client of a lock",
    "suspend": "suspend a client of a lock (restore with unsuspend)",
    "unsuspend": "restore a suspended client of a lock",
    "delete": "remove a client from a lock",
}


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))



def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `k3 clients list|add|suspend|unsuspend|delete` to the CLI."""
    k3 = add_command(subparsers, "k3", "Codelocks K3Connect administration: smartphone clients",
                     "syncd k3 clients list", f"syncd k3 clients suspend {LOCK} ann@example.com")
    groups = k3.add_subparsers(dest="k3_area", required=True, metavar="AREA")
    clients = add_command(groups, "clients", "smartphone clients of K3 locks (changes are billed)",
                          "syncd k3 clients list --lock " + LOCK,
                          f"syncd k3 clients add {LOCK} ann@example.com --hours 08:00-18:00 "
                          "--days mon-fri")
    actions = clients.add_subparsers(dest="k3_action", required=True, metavar="ACTION")
    listing = add_command(actions, "list", "clients as the last k3-clients read saw them (no call)",
                          "syncd k3 clients list", f"syncd k3 clients list --lock {LOCK} --json")
    listing.add_argument("--lock", help="only this lock")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=list_clients)
    for name, text in CHANGES.items():
        examples = [f"syncd k3 clients {name} {LOCK} ann@example.com",
                    f"syncd k3 clients {name} {LOCK} ann@example.com --dry-run"]
        if name == "add":
            examples.append(f"syncd k3 clients add {LOCK} ann@example.com --access-type ONE_TIME "
                            "--message 'Welcome to the stock room' --yes")
        p = add_command(actions, name, text, *examples)
        p.add_argument("lock", metavar="LOCK", help="K3Connect lock id (see `k3 clients list`)")
        p.add_argument("email", metavar="EMAIL", help="the client's K3 Connect e-mail address")
        if name == "add":
            p.add_argument("--access-type", default="STANDARD", choices=("STANDARD", "ONE_TIME"),
                           type=str.upper, help="STANDARD (default) or ONE_TIME")
            p.add_argument("--hours", metavar="HH:MM-HH:MM",
                           help="when the client may open, e.g. 08:00-18:00 (default: all day)")
            p.add_argument("--days", help="on which days, e.g. mon-fri or sat,sun (default: all)")
            p.add_argument("--periods", metavar="FILE", type=Path,
                           help="all ten active-period slots as JSON, as the vendor documents "
                                "them (instead of --hours/--days)")
            p.add_argument("--message", help="invitation text (letters, digits, spaces, _,-.(); "
                                             "at most 500)")
        p.add_argument("--yes", action="store_true", help="do it without asking")
        p.add_argument("--dry-run", action="store_true",
                       help="print what would be sent and its cost; send nothing")
        p.set_defaults(func=change_client, k3_change=name)


async def list_clients(args: argparse.Namespace, settings: config.Settings,
                       redactor: Redactor) -> int:
    """Print report.k3_clients with the lock names (no vendor call)."""
    from syncd.runtime import open_database

    async with open_database(settings) as db, db.connection() as conn:
        rows = [dict(r) for r in await conn.fetch(
            "SELECT c.lock_id, l.lock_name, c.email, c.status, c.access_type, c.expected, "
            "c.last_seen_at FROM report.k3_clients c LEFT JOIN report.k3_locks l USING (lock_id) "
            "WHERE $1::text IS NULL OR c.lock_id = $1 ORDER BY c.lock_id, lower(c.email)",
            args.lock)]
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("no clients known" + (f" for lock {_clean(args.lock)}" if args.lock else "")
              + " (as of the last k3-clients run)", file=sys.stderr)
        return 0
    print(f"{'LOCK':<34} {'NAME':<18} {'EMAIL':<32} {'STATUS':<10} {'TYPE':<9} EXPECTED")
    for r in rows:
        print(f"{_clean(r['lock_id']):<34} {_clean(r['lock_name'])[:18]:<18} "
              f"{_clean(r['email'])[:32]:<32} {_clean(r['status']):<10} "
              f"{_clean(r['access_type']):<9} {'yes' if r['expected'] else 'no'}")
    return 0


def _periods(args: argparse.Namespace) -> dict[str, Any] | None:
    from syncd.actions.k3clients import K3ClientError, active_periods

    if args.periods is not None:
        if args.hours is not None or args.days is not None:
            raise K3ClientError("give --periods, or --hours/--days, not both")
        try:
            value: dict[str, Any] = json.loads(args.periods.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise K3ClientError(f"--periods {args.periods}: {err}") from None
        return value
    if args.hours is None and args.days is None:
        return None
    return active_periods(args.hours, args.days)


def describe(plan: ChangePlan, base_url: str) -> list[str]:
    """What will be sent, to whom, at what cost, with the reserve left."""
    c = plan.change
    name = f" ({_clean(plan.lock.lock_name)})" if plan.lock.lock_name else ""
    fields = " ".join(f"{k}={_clean(v)}" for k, v in c.form().items() if k != "activeperiods")
    lines = [f"{c.action} client {_clean(c.email)} on lock {c.lock_id}{name}",
             f"  request: {_method(c.action)} {base_url.rstrip('/')}/u/1/k3connect/{c.lock_id}"
             f"/client accesskey=<the lock's access key> {fields}"]
    if c.active_periods is not None:
        lines.append(f"  active periods: {_periods_text(c.active_periods)}")
    lines += [f"  note: {_clean(n)}" for n in plan.notes()]
    reread = f"{plan.reread_pages} to re-read the lock's clients"
    reserve = plan.reserve_left
    lines += [f"  cost: {plan.calls} Utility calls (1 to {c.action}, {reread}); "
              "each retry costs one more",
              f"  operator reserve left for {plan.period}: {reserve} of {plan.usage.reserve} "
              f"Utility calls; {plan.quota_left} of {plan.usage.quota} left in the quota"]
    if reserve < plan.calls:
        lines.append(f"  beyond the reserve, {plan.calls - reserve} call(s) come out of the "
                     "scheduled K3 jobs' budget")
    return lines


def _method(action: str) -> str:
    from syncd.actions.k3clients import METHODS

    return METHODS[action]


def _periods_text(periods: dict[str, Any]) -> str:
    from syncd.actions.k3clients import DAYS

    shown = []
    for slot, p in sorted(periods.items()):
        if p.get("enabled"):
            days = ",".join(d for d in DAYS if p.get(d)) or "no days"
            shown.append(f"slot {slot} {p.get('starts')}-{p.get('ends')} {days}")
    return "; ".join(shown) or "none enabled"


def _report(outcome: ChangeOutcome, plan: ChangePlan) -> str:
    from syncd.actions.k3clients import PAST

    c = plan.change
    if outcome.outcome != "ok":
        return (f"{c.action} {_clean(c.email)} on lock {c.lock_id} {outcome.outcome}: "
                f"{_clean(outcome.message)} ({outcome.calls} Utility call(s); logged as "
                f"#{outcome.seq})")
    if outcome.reread_error:
        after = (f"the re-read failed ({_clean(outcome.reread_error)}); k3-clients will catch up "
                 "at its next run")
    else:
        state = "not listed" if outcome.status is None else f"listed {_clean(outcome.status)}"
        after = f"the lock now lists {outcome.listed} client(s), {_clean(c.email)} {state}"
    return (f"{PAST[c.action]} {_clean(c.email)} on lock {c.lock_id}: Codelocks answered "
            f"{_clean(outcome.message)}; {after}; {outcome.calls} Utility call(s); logged as "
            f"#{outcome.seq}")


async def change_client(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Plan the change, show its cost, ask (unless --yes or --dry-run), send it, print the end."""
    from syncd.actions.k3clients import K3ClientError, apply_change, change, plan_change
    from syncd.cli.confirm import confirmed
    from syncd.runtime import open_database, open_http
    from syncd.sync.codelocks.jobs import K3Context

    prog = f"syncd k3 clients {args.k3_change}"
    if settings.codelocks is None:
        print(f"{prog}: Codelocks is not configured (no [codelocks] section)", file=sys.stderr)
        return 2
    try:
        wanted = change(args.k3_change, args.lock, args.email,
                        access_type=getattr(args, "access_type", None),
                        periods=_periods(args) if args.k3_change == "add" else None,
                        message=getattr(args, "message", None))
    except K3ClientError as err:
        print(f"{prog}: {err} (no call was made)", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http:
        k3 = K3Context(db, settings.codelocks, http)
        try:
            plan = await plan_change(k3, wanted)
        except K3ClientError as err:
            print(f"{prog}: {err} (no call was made)", file=sys.stderr)
            return 2
        print("\n".join(describe(plan, str(settings.codelocks.base_url))))
        if args.dry_run:
            print("nothing sent (--dry-run)")
            return 0
        if not await confirmed(f"{args.k3_change.capitalize()} now, spending {plan.calls} "
                               "Utility calls?", yes=args.yes, refusal=f"{prog}: nothing sent"):
            return 1
        outcome = await apply_change(k3, plan, actor=operator(), scrub=redactor.scrub)
    print(_report(outcome, plan))
    return 0 if outcome.outcome == "ok" else 1

"""`syncd alerts list|redeliver|ack|test`: alert deliveries per hook, dead letters, a test event.

Redelivery, acknowledgement and tests are acts (syncd/alerts/operator.py): each is written to
the action log with the operator's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from syncd.cli.help import SubParsers, add_command
from syncd.cli.operator import clean, dumps, ids, operator, positive, when

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config

# As syncd.db.alerts.STATES (not imported: help stays light).
STATES = ("pending", "delivered", "stopped", "dead", "acknowledged")


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `alerts list|redeliver|ack|test` to the CLI."""
    parser = add_command(sub, "alerts", "alert deliveries: list, redeliver, acknowledge, test",
                         "syncd alerts list --status dead",
                         "syncd alerts redeliver --dead --hook ops")
    actions = parser.add_subparsers(dest="alerts_action", required=True, metavar="ACTION")
    p = add_command(actions, "list", "deliveries per hook, newest first (acknowledged: dead "
                    "and acknowledged)", "syncd alerts list --status dead --hook ops",
                    "syncd alerts list --json | jq '.[] | .webhook_id'")
    p.add_argument("--status", choices=STATES, help="only deliveries in this state")
    p.add_argument("--hook", metavar="NAME", help="only deliveries to this hook")
    p.add_argument("--limit", type=positive, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=list_deliveries)
    p = add_command(actions, "redeliver", "send dead or stopped deliveries again, with a fresh "
                    "attempt budget and the same webhook-id (the daemon's deliverer sends them)",
                    "syncd alerts redeliver 812 813", "syncd alerts redeliver --dead --hook ops")
    _selection(p, "dead or stopped delivery ids")
    p.set_defaults(func=redeliver)
    p = add_command(actions, "ack", "acknowledge dead deliveries: they stay dead but are no "
                    "longer a problem in `syncd status`",
                    "syncd alerts ack 812 --reason 'told the on-call by phone'",
                    "syncd alerts ack --dead --hook old-pager --reason 'hook retired'")
    _selection(p, "dead delivery ids")
    p.add_argument("--reason", required=True, help="why (kept with the delivery and in the "
                                                   "action log)")
    p.set_defaults(func=acknowledge)
    p = add_command(actions, "test", "send a signed syncd.test event to a hook now and print "
                    "the receiver's answer", "syncd alerts test ops")
    p.add_argument("hook", metavar="HOOK", help="the hook's name (alerts.hooks name)")
    p.set_defaults(func=test_hook)


def _selection(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help=f"{what} (or --dead)")
    parser.add_argument("--dead", action="store_true",
                        help="every dead delivery not acknowledged (to --hook)")
    parser.add_argument("--hook", metavar="NAME", help="only deliveries to this hook")


async def list_deliveries(args: argparse.Namespace, settings: config.Settings,
                          redactor: Redactor) -> int:
    """Print deliveries, newest first."""
    from syncd.db import alerts
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        found = await alerts.list_deliveries(db, args.status, args.hook, args.limit)
    if args.json:
        print(dumps([redactor.scrub({**dataclasses.asdict(d), "webhook_id": d.event_id})
                     for d in found]))
        return 0
    print(f"{'ID':>7} {'HOOK':<16} {'STATE':<12} {'TRIES':>5} {'TYPE':<18} {'WEBHOOK-ID':<28} "
          f"{'QUEUED':<25} {'FINISHED':<25} LAST")
    for d in found:
        last = (f"HTTP {d.last_status}" if d.last_status else "") + \
            (f" {d.last_error}" if d.last_error and d.state != "delivered" else "")
        if d.state == "acknowledged":
            last = f"acknowledged by {d.acked_by} at {when(d.acked_at)}: {d.ack_reason}"
        elif d.redeliveries:
            last += f" (redelivered {d.redeliveries}x, last {when(d.requeued_at)})"
        print(f"{d.id:>7} {clean(d.hook)[:16]:<16} {d.state:<12} {d.attempts:>5} "
              f"{clean(d.type)[:18]:<18} {clean(d.event_id)[:28]:<28} {when(d.created_at):<25} "
              f"{when(d.finished_at):<25} {clean(redactor.scrub(last.strip()))[:120]}")
    more = f" (the newest {args.limit}: raise --limit for more)" if len(found) == args.limit else ""
    print(f"{len(found)} deliver{'y' if len(found) == 1 else 'ies'}{more}")
    return 0


def _bad_selection(args: argparse.Namespace, command: str) -> str | None:
    """Why the ids/--dead given cannot be acted on, or None."""
    if args.ids and args.dead:
        return "give delivery ids or --dead, not both"
    if not args.ids and not args.dead:
        return f"give delivery ids, or --dead for every dead one (`syncd alerts {command} --dead`)"
    try:
        ids(args.ids, "a delivery")
    except argparse.ArgumentTypeError as err:
        return str(err)
    return None


async def redeliver(args: argparse.Namespace, settings: config.Settings,
                    redactor: Redactor) -> int:
    """Put dead or stopped deliveries back in the queue; print how many, per hook.

    Exit 0 when done (also when --dead found none), 1 when a named id could not be redelivered,
    2 for a command line that names nothing or both."""
    from syncd.alerts import operator as acts
    from syncd.runtime import open_database

    problem = _bad_selection(args, "redeliver")
    if problem:
        print(f"syncd alerts redeliver: {problem}", file=sys.stderr)
        return 2
    async with open_database(settings) as db:
        picked = await acts.pick(db, ids(args.ids, "a delivery"), hook=args.hook,
                                 wanted=("dead", "acknowledged", "stopped"))
        done = await acts.redeliver(db, picked.ids, actor=operator(),
                                    selection=_described(args))
    if done.changed:
        print(f"redelivered {len(done.changed)} deliver{'y' if len(done.changed) == 1 else 'ies'} "
              f"({_per_hook(done.by_hook())}); action log #{done.seq}")
    else:
        print("redelivered 0 deliveries: nothing dead" + (f" to hook {args.hook}"
                                                          if args.hook else ""))
    configured = {h.hook_name for h in settings.alerts.hooks}
    absent = sorted(set(done.changed.values()) - configured)
    if absent:
        print(f"note: {', '.join(absent)} is not in this configuration's alerts.hooks: only a "
              "daemon whose configuration has it will send these")
    left = _left(picked.other, picked.unknown, [i for i in picked.ids if i not in done.changed])
    for line in left:
        print(line)
    return 1 if left else 0


async def acknowledge(args: argparse.Namespace, settings: config.Settings,
                      redactor: Redactor) -> int:
    """Acknowledge dead deliveries; print how many, per hook (exit codes as redeliver)."""
    from syncd.alerts import operator as acts
    from syncd.runtime import open_database

    problem = _bad_selection(args, "ack") or (None if args.reason.strip()
                                              else "--reason must not be empty")
    if problem:
        print(f"syncd alerts ack: {problem}", file=sys.stderr)
        return 2
    async with open_database(settings) as db:
        picked = await acts.pick(db, ids(args.ids, "a delivery"), hook=args.hook,
                                 wanted=("dead",))
        done = await acts.acknowledge(db, picked.ids, actor=operator(),
                                      reason=args.reason.strip(), selection=_described(args))
    if done.changed:
        print(f"acknowledged {len(done.changed)} dead deliver"
              f"{'y' if len(done.changed) == 1 else 'ies'} ({_per_hook(done.by_hook())}); "
              f"action log #{done.seq}")
    else:
        print("acknowledged 0 deliveries: nothing dead and unacknowledged"
              + (f" to hook {args.hook}" if args.hook else ""))
    left = _left(picked.other, picked.unknown, [i for i in picked.ids if i not in done.changed])
    for line in left:
        print(line)
    return 1 if left else 0


def _described(args: argparse.Namespace) -> dict[str, object]:
    """The selection as the action log keeps it."""
    if args.dead:
        return {"dead": True, "hook": args.hook}
    return {"asked": ids(args.ids, "a delivery"), "hook": args.hook}


def _per_hook(counts: dict[str, int]) -> str:
    return ", ".join(f"{clean(hook)} {n}" for hook, n in counts.items())


def _left(other: dict[int, str], unknown: list[int], raced: list[int]) -> list[str]:
    """A line per named delivery left alone, saying why."""
    lines = [f"left alone: {i} is {state}" for i, state in sorted(other.items())]
    lines += [f"left alone: {i} changed meanwhile" for i in raced]
    lines += [f"unknown: {i} (no such delivery, or pruned after 30 days)" for i in unknown]
    return lines


async def test_hook(args: argparse.Namespace, settings: config.Settings,
                    redactor: Redactor) -> int:
    """Send a `syncd.test` event to one hook; print its answer; exit 0 on 2xx, 1 otherwise."""
    from syncd.alerts import operator as acts
    from syncd.alerts.deliverer import hooks_from
    from syncd.runtime import open_database, open_http

    hooks = {h.name: h for h in hooks_from(settings.alerts)}
    hook = hooks.get(args.hook)
    if hook is None:
        print(f"syncd alerts test: no hook {clean(args.hook)!r} in alerts.hooks; configured: "
              f"{', '.join(sorted(hooks)) or 'none'}", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http:
        tested = await acts.send_test(db, http, hook, actor=operator())
    answer = f"HTTP {tested.status}" if tested.status is not None else \
        f"not reached: {redactor.scrub(tested.error)}"
    verdict = "accepted" if tested.ok else "refused" if tested.status is not None else "failed"
    print(f"hook {clean(hook.name)} ({hook.format}): {clean(answer)} ({verdict}); webhook-id "
          f"{tested.webhook_id}; action log #{tested.seq}")
    if tested.excerpt.strip():
        print(f"answer: {clean(redactor.scrub(tested.excerpt.strip()))}")
    return 0 if tested.ok else 1

"""`syncd drift list|show|suppress|unsuppress` and `syncd reconcile [--apply]`."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `drift …` and `reconcile` to the CLI."""
    parser = subparsers.add_parser(
        "drift", help="drift cases: list, show, suppress",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  syncd drift list\n  syncd drift suppress 42 --until 7d "
               "--reason 'contract renegotiated'")
    actions = parser.add_subparsers(dest="drift_action", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="open cases (suppressed included), or --all / --status")
    p.add_argument("--status", choices=["open", "resolved", "suppressed"], default="open")
    p.add_argument("--all", action="store_true", help="every case, whatever its status")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=list_cases)
    p = actions.add_parser("show", help="one case, with its plan and the actions on its subject")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=show_case)
    p = actions.add_parser("suppress", help="silence an open case until a time, with a reason")
    p.add_argument("id", type=int)
    p.add_argument("--until", required=True, type=until_time,
                   help="ISO 8601 time (2026-12-31T18:00Z) or a duration from now (12h, 7d)")
    p.add_argument("--reason", required=True, help="why (shown with the case)")
    p.set_defaults(func=suppress_case)
    p = actions.add_parser("unsuppress", help="lift a case's suppression")
    p.add_argument("id", type=int)
    p.set_defaults(func=unsuppress_case)
    p = subparsers.add_parser(
        "reconcile", help="compute drift now; print open cases and the plan",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  syncd reconcile\n  syncd reconcile --apply --json")
    p.add_argument("--apply", action="store_true",
                   help="carry out allowed plans (re-read each subject first; capped)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                   help="wait this long for a reconcile running elsewhere (the daemon's job, "
                        "another command) to finish; then give up, exit 1 (default 300)")
    p.set_defaults(func=run_reconcile)


def until_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A suppression end: an ISO 8601 time (UTC if it has no offset) or a duration like 12h."""
    now = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now + dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time nor a duration like 12h or 7d") from None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if value <= now:
        raise argparse.ArgumentTypeError(f"{text!r} is in the past")
    return value


def _clean(value: object) -> str:
    return "-" if value is None else _CONTROL.sub("?", str(value))


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _print_cases(cases: list[Any]) -> None:
    print(f"{'ID':>6} {'STATUS':<10} {'SEVERITY':<8} {'KIND':<22} {'SUBJECT':<38} "
          f"{'EXPECTED':<20} {'ACTUAL':<24} PLAN")
    for c in cases:
        plan = c.plan or {}
        shown = "-" if not plan else plan["action"] + ("" if plan.get("allowed") else " (not allowed)")
        print(f"{c.id:>6} {c.status:<10} {c.severity:<8} {c.kind:<22} {_clean(c.subject)[:38]:<38} "
              f"{_clean(c.expected)[:20]:<20} {_clean(c.actual)[:24]:<24} {shown}")


async def list_cases(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Print cases as report.drift shows them."""
    from syncd.db import drift
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        cases = await drift.list_cases(db, None if args.all else args.status, args.limit)
    if args.json:
        print(json.dumps([c.__dict__ for c in cases], default=str, indent=2))
    else:
        _print_cases(cases)
    return 0


async def show_case(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Print one case and the latest actions on its subject."""
    from syncd.db import drift
    from syncd.db.actions import actions_for
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        case = await drift.get_case(db, args.id)
        actions = await actions_for(db, case.subject) if case else []
    if case is None:
        print(f"syncd drift: no case {args.id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(case.__dict__ | {"actions": [a.__dict__ for a in actions]},
                         default=str, indent=2))
        return 0
    for key, value in case.__dict__.items():
        print(f"{key + ':':<19} {_clean(json.dumps(value) if isinstance(value, dict) else value)}")
    for a in actions:
        print(f"  action #{a.seq} {a.at:%Y-%m-%d %H:%M:%S} {a.actor} {a.action} {a.outcome} "
              f"{_clean(json.dumps(a.detail))[:100]}")
    return 0


async def suppress_case(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Suppress an open case until a time, with a reason."""
    from syncd.db import drift
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        done = await drift.suppress(db, args.id, args.until, args.reason, _user())
    if not done:
        print(f"syncd drift: case {args.id} is not open", file=sys.stderr)
        return 1
    print(f"case {args.id} suppressed until {args.until.isoformat()}")
    return 0


async def unsuppress_case(args: argparse.Namespace, settings: config.Settings,
                          redactor: Redactor) -> int:
    """Lift a suppression."""
    from syncd.db import drift
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        done = await drift.unsuppress(db, args.id)
    if not done:
        print(f"syncd drift: no case {args.id}", file=sys.stderr)
        return 1
    print(f"case {args.id} no longer suppressed")
    return 0


async def run_reconcile(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Reconcile now; print open cases and the plan; with --apply, carry the plan out.

    It runs as the `reconcile` job does, through the job runner under the job's lock, so it never
    overlaps the daemon's reconcile (or another `syncd reconcile`) on any replica.
    """
    from syncd.db import drift
    from syncd.db.locks import JobLocks
    from syncd.jobs.heartbeat import registered
    from syncd.jobs.runner import JobRunner, Outcome
    from syncd.reconcile.job import ReconcileJob, build_remediators
    from syncd.runtime import open_database, open_http

    if settings.reconcile.mode == "off":
        print("syncd reconcile: reconcile.mode is off", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http, \
            registered(db, settings, kind="once", command="reconcile", scrub=redactor.scrub) as me, \
            JobLocks(db.dsn, connect_timeout=settings.database.connect_timeout) as job_locks:
        job = ReconcileJob(db, settings, build_remediators(settings, db, http) if args.apply
                           else {}, apply=args.apply)
        run = await JobRunner(db, scrub=redactor.scrub, locks=job_locks,
                              replica=me.id).run(job, wait=args.wait)
        cases = await drift.list_cases(db, "open")
    if run.outcome is Outcome.SKIPPED:
        print(f"syncd reconcile: another reconcile (the daemon's, or another command's) still "
              f"held the lock after {args.wait:g}s; nothing done", file=sys.stderr)
        return 1
    if job.last is None:  # failed before it found anything
        print(f"syncd reconcile: {run.error}", file=sys.stderr)
        return 1
    result, attempts = job.last
    merged = result.merge
    if args.json:
        print(json.dumps({"opened": merged.opened, "resolved": merged.resolved,
                          "updated": merged.updated, "escalated": merged.escalated,
                          "reminded": merged.reminded, "failed_rule_sets": result.failed,
                          "cases": [c.__dict__ for c in cases],
                          "actions": [a.__dict__ for a in attempts]}, default=str, indent=2))
    else:
        announced = "".join(f"{n} {what}, " for n, what in ((merged.escalated, "escalated"),
                                                            (merged.reminded, "reminded")) if n)
        print(f"reconciled: {merged.opened} opened, {merged.resolved} resolved, {announced}"
              f"{len(cases)} open (mode {settings.reconcile.mode})")
        _print_cases(cases)
        for name, error in sorted(result.failed.items()):
            print(f"rule set {name} could not load: {redactor.scrub(error)}")
        for a in attempts:
            print(f"{a.action} {_clean(a.subject)}: {a.outcome} "
                  f"{_clean(a.detail.get('error') or a.detail.get('reason') or '')}")
    if run.error and not result.failed:  # stopped part-way (the rule sets' own are listed above)
        print(f"syncd reconcile: {run.error}", file=sys.stderr)
    return 1 if run.outcome is Outcome.FAILED or any(a.outcome == "failed" for a in attempts) \
        else 0

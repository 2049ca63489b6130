"""`syncd drift list|show|suppress|unsuppress` and `syncd reconcile [--apply]`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.help import add_command
from syncd.cli.operator import operator

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `drift …` and `reconcile` to the CLI."""
    parser = add_command(subparsers, "drift", "drift cases: list, show, suppress",
                         "syncd drift list",
                         "syncd drift suppress 42 --until 7d --reason 'contract renegotiated'")
    actions = parser.add_subparsers(dest="drift_action", required=True, metavar="ACTION")
    p = add_command(actions, "list", "open cases (suppressed included), or --all / --status",
                    "syncd drift list", "syncd drift list --status resolved --limit 50",
                    "syncd drift list --all --json | jq '.[].kind'")
    p.add_argument("--status", choices=["open", "resolved", "suppressed"], default="open")
    p.add_argument("--all", action="store_true", help="every case, whatever its status")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=list_cases)
    p = add_command(actions, "show", "one case, with its plan and the actions on its subject",
                    "syncd drift show 42")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=show_case)
    p = add_command(actions, "suppress", "silence open cases until a time, with a reason "
                    "(more than one case: asks, or --yes)",
                    "syncd drift suppress 42 --until 7d --reason 'contract renegotiated'",
                    "syncd drift suppress --kind terminal_offline --until 12h "
                    "--reason 'site power cut' --dry-run")
    p.add_argument("ids", type=int, nargs="*", metavar="ID", help="case ids")
    p.add_argument("--kind", action="append", default=[], metavar="KIND",
                   help="every open case of this kind (repeatable)")
    p.add_argument("--until", required=True, type=until_time,
                   help="ISO 8601 time (2026-12-31T18:00Z) or a duration from now (12h, 7d)")
    p.add_argument("--reason", required=True, help="why (shown with the case)")
    p.add_argument("--yes", action="store_true",
                   help="suppress several cases without asking (needed without a terminal)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cases that would be suppressed, change nothing")
    p.set_defaults(func=suppress_case)
    p = add_command(actions, "unsuppress", "lift a case's suppression",
                    "syncd drift unsuppress 42")
    p.add_argument("id", type=int)
    p.set_defaults(func=unsuppress_case)
    p = add_command(subparsers, "reconcile", "compute drift now; print open cases and the plan",
                    "syncd reconcile", "syncd reconcile --apply --json")
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



def _print_cases(cases: list[Any]) -> None:
    from syncd.cli.table import Column, render

    columns = (Column("ID", right=True), Column("STATUS"), Column("SEVERITY"), Column("KIND"),
               Column("SUBJECT", 38), Column("EXPECTED", 24), Column("ACTUAL", 30),
               Column("PLAN", 30))
    rows = []
    for c in cases:
        plan = c.plan or {}
        shown = "-" if not plan else plan["action"] + ("" if plan.get("allowed") else " (not allowed)")
        rows.append((str(c.id), c.status, c.severity, c.kind, _clean(c.subject),
                     _clean(c.expected), _clean(c.actual), shown))
    print("\n".join(render(columns, rows)))


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
    """Suppress open cases (by id, or every open one of --kind) until a time, with a reason.

    More than one case asks first (or takes --yes); --dry-run lists them. A named case that is
    not open stops the command before anything is suppressed.
    """
    from syncd.cli.confirm import confirmed
    from syncd.db import drift
    from syncd.runtime import open_database

    if not args.ids and not args.kind:
        print("syncd drift suppress: name the case IDs, or --kind KIND", file=sys.stderr)
        return 2
    until = args.until.isoformat(timespec="seconds")
    async with open_database(settings) as db:
        cases: dict[int, Any] = {}
        for case_id in args.ids:
            case = await drift.get_case(db, case_id)
            if case is None or case.status == "resolved":
                print(f"syncd drift suppress: case {case_id} is not open; nothing suppressed",
                      file=sys.stderr)
                return 1
            cases[case.id] = case
        for case in await drift.open_of_kinds(db, args.kind) if args.kind else []:
            cases.setdefault(case.id, case)
        if not cases:
            print(f"syncd drift suppress: no open case of kind {', '.join(args.kind)}",
                  file=sys.stderr)
            return 1
        listing = [f"  {c.id:>6} {c.severity:<8} {c.kind} {_clean(c.subject)}"
                   for c in cases.values()]
        what = f"{len(cases)} case(s) until {until} ({_clean(args.reason)!r})"
        if args.dry_run:
            print("\n".join([f"dry run: would suppress {what}:", *listing, "nothing changed"]))
            return 0
        if len(cases) > 1 and not await confirmed(
                "\n".join([f"Suppress {what}:", *listing, "Suppress them?"]), yes=args.yes,
                refusal=f"syncd drift suppress: {len(cases)} cases, none suppressed"):
            return 1
        done = [c.id for c in cases.values()
                if await drift.suppress(db, c.id, args.until, args.reason, operator())]
    for case_id in done:
        print(f"case {case_id} suppressed until {until}")
    gone = sorted(set(cases) - set(done))  # resolved meanwhile
    for case_id in gone:
        print(f"syncd drift suppress: case {case_id} is no longer open", file=sys.stderr)
    return 1 if gone else 0


async def unsuppress_case(args: argparse.Namespace, settings: config.Settings,
                          redactor: Redactor) -> int:
    """Lift a suppression."""
    from syncd.db import drift
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        done = await drift.unsuppress(db, args.id, operator())
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

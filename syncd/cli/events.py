"""`syncd events list|show|replay`: the stored pushes, and putting them back in the inbox.

A replay is a re-read (syncd/inbox/replay.py): idempotent, counted on stdout, in the log and in
the action log. Quarantined pushes (`qN`) are listed and shown, never replayed: intake refused
their body, so there is no event to re-read.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command
from syncd.cli.operator import clean, dumps, ids, operator, positive, since_time, when

if TYPE_CHECKING:
    from syncd.db.events import Event, Quarantined
    from syncd.logs import Redactor
    from syncd.settings import core as config

# As syncd.db.events.STATUSES and syncd.inbox.replay.REPLAYABLE (not imported: help stays light).
STATUSES = ("pending", "processed", "unparsed", "failed")
REPLAYABLE = ("failed", "unparsed", "processed")
QUARANTINED = "quarantined"
SHOWN_BYTES = 4096  # of a quarantined body
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all control characters but \t \n


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `events list|show|replay` to the CLI."""
    parser = add_command(sub, "events", "stored pushes: list, show, replay",
                         "syncd events list --status failed --since 1d",
                         "syncd events replay --status failed --since 6h --dry-run")
    actions = parser.add_subparsers(dest="events_action", required=True, metavar="ACTION")
    p = add_command(actions, "list", "stored pushes, newest first; --status quarantined lists "
                    "the pushes intake refused", "syncd events list --status failed --since 2h",
                    "syncd events list --status quarantined", "syncd events list --json | jq .")
    p.add_argument("--status", choices=[*STATUSES, QUARANTINED], help="only these")
    _since(p)
    p.add_argument("--limit", type=positive, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=list_events)
    p = add_command(actions, "show", "one stored push: body, attempts, last error (secrets "
                    "masked); qN is a quarantined push", "syncd events show 1234",
                    "syncd events show q17")
    p.add_argument("id", metavar="ID", help="the event's id, or qN for a quarantined push")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=show_event)
    p = add_command(actions, "replay", "put stored pushes back in the inbox to be processed "
                    "again (a re-read: idempotent); by id, or every one with --status",
                    "syncd events replay 1234 1235",
                    "syncd events replay --status failed --since 6h --dry-run")
    p.add_argument("ids", nargs="*", metavar="ID", help="event ids (not with --status)")
    p.add_argument("--status", choices=REPLAYABLE,
                   help="replay every event with this status (oldest first, up to --limit)")
    _since(p)
    p.add_argument("--limit", type=positive, default=1000,
                   help="with --status: at most this many (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="say which events, change nothing")
    p.set_defaults(func=replay_events)


def _since(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=since_time, metavar="TIME",
                        help="received since: ISO 8601 (UTC without an offset) or a duration "
                             "ago (30m, 6h, 7d)")


async def list_events(args: argparse.Namespace, settings: config.Settings,
                      redactor: Redactor) -> int:
    """Print stored (or quarantined) pushes, newest first."""
    from syncd.db import events
    from syncd.runtime import open_database

    async with open_database(settings) as db:
        if args.status == QUARANTINED:
            refused = await events.list_quarantined(db, args.since, args.limit)
        else:
            found = await events.list_events(db, args.status, args.since, args.limit)
    if args.status == QUARANTINED:
        if args.json:
            print(dumps([redactor.scrub(_quarantined(q)) for q in refused]))
            return 0
        print(f"{'ID':>8} {'RECEIVED':<25} {'BYTES':>7} {'CONTENT-TYPE':<20} REASON")
        for q in refused:
            print(f"{'q' + str(q.id):>8} {when(q.received_at):<25} {q.size:>7} "
                  f"{clean(q.content_type)[:20]:<20} {clean(redactor.scrub(q.reason))}")
        _footer(len(refused), args.limit, "quarantined push(es)")
        return 0
    if args.json:
        print(dumps([redactor.scrub(_event(e)) for e in found]))
        return 0
    print(f"{'ID':>8} {'RECEIVED':<25} {'STATUS':<9} {'TRIES':>5} {'REPLAYS':>7} "
          f"{'TYPE':<22} {'SUBJECT':<20} LAST ERROR")
    for e in found:
        print(f"{e.id:>8} {when(e.received_at):<25} {e.status:<9} {e.attempts:>5} "
              f"{e.replays:>7} {clean(redactor.scrub(e.event_type))[:22]:<22} "
              f"{clean(redactor.scrub(e.subject))[:20]:<20} "
              f"{clean(redactor.scrub(e.error or ''))[:100]}")
    _footer(len(found), args.limit, "event(s)")
    return 0


def _footer(shown: int, limit: int, what: str) -> None:
    more = f" (the newest {limit}: raise --limit for more)" if shown == limit else ""
    print(f"{shown} {what}{more}")


def _event(event: Event) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(event).items() if v is not None or k not in
            ("body", "dedupe_key")}


def _quarantined(q: Quarantined) -> dict[str, Any]:
    found = dataclasses.asdict(q)
    found["id"] = f"q{q.id}"
    found["body"] = _printable(q.body) if q.body is not None else None
    return found if q.body is not None else {k: v for k, v in found.items() if k != "body"}


def _printable(body: bytes) -> str:
    """Raw bytes as text a terminal shows safely: undecodable bytes and control characters
    (but tab and newline) escaped."""
    text = body.decode("utf-8", "backslashreplace")
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


async def show_event(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """Print one event (or quarantined push) with its body, secrets masked; exit 1 if unknown."""
    from syncd.db import events
    from syncd.runtime import open_database

    text = args.id.strip().lower()
    quarantined = text.startswith("q")
    try:
        (number,) = ids([text[1:] if quarantined else text], "an event")
    except argparse.ArgumentTypeError as err:
        print(f"syncd events: {err} (or qN for a quarantined push)", file=sys.stderr)
        return 2
    async with open_database(settings) as db:
        if quarantined:
            refused = await events.get_quarantined(db, number)
        else:
            event = await events.get_event(db, number)
    if quarantined:
        if refused is None:
            print(f"syncd events: no quarantined push q{number}", file=sys.stderr)
            return 1
        _print_quarantined(refused, redactor, args.json)
        return 0
    if event is None:
        print(f"syncd events: no event {number} (never stored, or pruned after 7 days)",
              file=sys.stderr)
        return 1
    if args.json:
        print(dumps(redactor.scrub(_event(event))))
        return 0
    lines = [("id", event.id), ("source", event.source), ("received at", when(event.received_at)),
             ("status", event.status), ("attempts", event.attempts),
             ("type", redactor.scrub(event.event_type)),
             ("subject", redactor.scrub(event.subject))]
    if event.status == "pending":
        lines.append(("next attempt", when(event.next_attempt_at)))
    else:
        lines.append(("finished at", when(event.processed_at)))
    lines.append(("last error", redactor.scrub(event.error)))
    if event.replays:
        lines.append(("replayed", f"{event.replays} time(s), last at {when(event.replayed_at)}"))
    lines.append(("dedupe key", redactor.scrub(event.dedupe_key)))
    for key, value in lines:
        print(f"{key + ':':<14}{clean(value)}")
    print("body:")
    print(redactor.scrub(event.body or ""))  # jsonb_pretty: control characters stay escaped
    return 0


def _print_quarantined(q: Quarantined, redactor: Redactor, as_json: bool) -> None:
    if as_json:
        print(dumps(redactor.scrub(_quarantined(q))))
        return
    body = q.body or b""
    for key, value in (("id", f"q{q.id}"), ("source", q.source),
                       ("received at", when(q.received_at)), ("status", QUARANTINED),
                       ("reason", redactor.scrub(q.reason)), ("content type", q.content_type),
                       ("bytes", q.size)):
        print(f"{key + ':':<14}{clean(value)}")
    print("not replayable: intake refused this body, so there is no stored event to re-read")
    print("body:" + ("" if len(body) <= SHOWN_BYTES else f" (the first {SHOWN_BYTES} bytes)"))
    print(redactor.scrub(_printable(body[:SHOWN_BYTES])))


async def replay_events(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """Put the named events, or every one with --status, back in the inbox; print the count.

    Exit 0 when done (also when nothing matched --status), 1 when an id named no replayable
    event, 2 for a command line that names nothing or both.
    """
    from syncd.inbox import replay
    from syncd.runtime import open_database

    problem = _replay_problem(args)
    if problem:
        print(f"syncd events replay: {problem}", file=sys.stderr)
        return 2
    selection = replay.Selection(tuple(ids(args.ids, "an event")), args.status, args.since,
                                 args.limit)
    async with open_database(settings) as db:
        plan = await replay.plan(db, selection)
        done = None if args.dry_run else await replay.replay(db, selection, plan.ids,
                                                              actor=operator())
    if done is None:
        print(f"dry run: would replay {len(plan.ids)} event(s)" + _listed(plan.ids))
    elif done.replayed:
        counts = ", ".join(f"{n} {status}" for status, n in done.by_status().items())
        print(f"replayed {len(done.replayed)} event(s) ({counts}); action log #{done.seq}"
              + _listed(sorted(done.replayed)))
    else:
        print("replayed 0 events: nothing to replay")
    pending = plan.pending + ([i for i in plan.ids if i not in done.replayed] if done else [])
    if pending:
        print(f"left alone: {len(pending)} already pending (the inbox worker has them)"
              + _listed(pending))
    if plan.unknown:
        print(f"unknown: {len(plan.unknown)} (never stored, or pruned after 7 days)"
              + _listed(plan.unknown))
    return 1 if plan.unknown else 0


def _replay_problem(args: argparse.Namespace) -> str | None:
    """Why the command line cannot be replayed, or None."""
    if args.ids and args.status:
        return "give event ids or --status, not both"
    if not args.ids and not args.status:
        return "give event ids, or --status failed|unparsed|processed"
    if args.since and not args.status:
        return "--since selects with --status; ids name their events already"
    refused = [i for i in args.ids if i.strip().lower().startswith("q")]
    if refused:
        return (f"{clean(refused[0])}: a quarantined push cannot be replayed: intake refused its "
                "body (not JSON PostgreSQL can store), so there is no event to re-read; "
                f"`syncd events show {clean(refused[0])}` shows it")
    try:
        ids(args.ids, "an event")
    except argparse.ArgumentTypeError as err:
        return str(err)
    return None


def _listed(numbers: list[int], most: int = 20) -> str:
    shown = " ".join(str(n) for n in numbers[:most])
    return "" if not numbers else f": {shown}" + (f" … (+{len(numbers) - most})"
                                                   if len(numbers) > most else "")

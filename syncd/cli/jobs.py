"""`syncd sync`, `syncd status` and `syncd subscriptions`: jobs and their health."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command
from syncd.jobs import catalog
from syncd.jobs.verdict import Health

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `sync`, `status` and `subscriptions` to the CLI."""
    p = add_command(sub, "sync", "run pull jobs once, now, and exit (the daemon schedules them)",
                    "syncd sync all", "syncd sync neolock-uploads biotime-terminals")
    p.add_argument("jobs", nargs="+", metavar="JOB",
                   help="job names, or 'all' for every enabled job; known: "
                   + ", ".join(catalog.built()))
    # Always once: `--once` is what this command used to require, still accepted so that
    # existing cron lines and timers keep working.
    p.add_argument("--once", action="store_true",
                   help="accepted for compatibility: sync always runs each job once")
    p.set_defaults(func=sync)
    p = add_command(sub, "status", "replicas, jobs, last runs, health; exit 0 ok, 1 degraded, "
                    "2 down, 3 unknown", "syncd status", "syncd status --json --timeout 5 | jq .health")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up on the database after this long: exit 2 (default 10)")
    p.set_defaults(func=status, failure_exit=int(Health.UNKNOWN))
    p = add_command(sub, "subscriptions", "manage the NeoLock webhook subscription",
                    "syncd subscriptions show", "syncd subscriptions register --force",
                    "syncd subscriptions delete --dry-run")
    p.add_argument("action", choices=["register", "show", "delete"])
    p.add_argument("--force", action="store_true", help="register even if current")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.add_argument("--dry-run", action="store_true", help="say what delete would do, do nothing")
    p.set_defaults(func=subscriptions)


def select_jobs(requested: list[str], settings: config.Settings,
                table: catalog.Table = catalog.JOBS) -> tuple[list[str], list[str]]:
    """The jobs to run for `requested` (with `all` = every enabled job), and problems."""
    schedule = catalog.schedule(settings, table)
    by_name = {spec.name: spec for spec in table}
    enabled = [name for name, interval in schedule.items() if interval is not None]
    disabled = [name for name, interval in schedule.items() if interval is None]
    names: list[str] = []
    problems: list[str] = []
    for name in requested:
        spec = by_name.get(name)
        if name == "all":
            names += [n for n in enabled if n not in names]
        elif spec is None:
            problems.append(f"{name}: unknown job; enabled: {', '.join(enabled) or 'none'}"
                            + (f"; disabled: {', '.join(disabled)}" if disabled else ""))
        elif spec.factory is None:
            problems.append(f"{name}: not built in syncd {_version()} yet")
        elif name not in schedule:
            problems.append(f"{name}: needs a [{spec.section}] section, which is not configured")
        elif name not in names:
            names.append(name)  # named explicitly: runs even if disabled for the scheduler
    return names, problems


def _version() -> str:
    import syncd

    return syncd.__version__


async def sync(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Run the named jobs once; a line per finished job on stdout; exit 1 if any failed."""
    from syncd.cli.progress import Terminal
    from syncd.db.locks import JobLocks
    from syncd.jobs.heartbeat import registered
    from syncd.jobs.runner import JobRunner, Outcome
    from syncd.runtime import open_database, open_http

    names, problems = select_jobs(args.jobs, settings)
    for line in problems:
        print(f"syncd sync: {line}", file=sys.stderr)
    if problems:
        return 2
    terminal: Terminal = getattr(args, "terminal", None) or Terminal(sys.stderr)
    failed = 0
    async with open_database(settings) as db, open_http() as http, \
            registered(db, settings, kind="once", command="sync", scrub=redactor.scrub) as me, \
            JobLocks(db.dsn, connect_timeout=settings.database.connect_timeout) as job_locks:
        jobs = catalog.build_jobs(settings, db, http, once=True, only=names)
        runner = JobRunner(db, scrub=redactor.scrub, locks=job_locks,  # the daemon's path
                           replica=me.id)
        for name in names:
            with terminal.task(name) as bar:
                result = await runner.run(jobs[name], on_progress=bar.update)
            line = f"{name}: {result.outcome.value} items={result.items} " \
                   f"requests={result.requests} {result.seconds:.2f}s"
            if result.error:
                line += f" error={result.error}"
            print(line, flush=True)  # one line per finished job, on stdout
            failed += result.outcome is Outcome.FAILED
    return 1 if failed else 0


async def status(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Print the status; exit 0 ok, 1 degraded, 2 down (no daemon beating, or the database
    unreachable within --timeout); 3 (could not tell) comes from main()'s failure_exit."""
    from syncd.db import migrate as migrations
    from syncd.errors import DatabaseError, DatabaseUnavailable, SyncdError
    from syncd.jobs.status import collect_status, json_default
    from syncd.runtime import open_database

    body: dict[str, Any]
    try:
        async with asyncio.timeout(args.timeout):
            async with open_database(settings, wait=args.timeout, apply_migrations=False) as db:
                pending = [m.name for m in await migrations.pending(db)]
                if len(pending) == len(migrations.discover()):
                    raise DatabaseError("no syncd schema yet: run `syncd migrate` (or `syncd run`)")
                try:
                    body = await collect_status(db, catalog.schedule(settings),
                                                neolock_configured=settings.neolock is not None,
                                                policy=settings.status)
                except DatabaseError as err:
                    if not pending or isinstance(err, DatabaseUnavailable):
                        raise
                    # A newer syncd than the schema (installed, daemon not restarted yet): its
                    # queries need tables that do not exist yet. That says nothing of health.
                    raise SyncdError(f"cannot tell: {len(pending)} migration(s) pending ("
                                     f"{', '.join(pending)}) that this version's status needs; "
                                     "run `syncd migrate` (or restart `syncd run`)") from err
                if settings.codelocks is not None:  # from the ledger: no vendor call
                    body["codelocks_quota"] = await _quota(db, settings)
                if pending:
                    body["problems"].append(f"{len(pending)} migration(s) pending: "
                                            + ", ".join(pending))
                    if body["health"] == "ok":
                        body["health"] = "degraded"
    except (TimeoutError, DatabaseError) as err:
        reason = f"database unreachable within {args.timeout:g}s" \
            if isinstance(err, TimeoutError) else f"database unavailable: {redactor.scrub(str(err))}"
        if args.json:
            print(json.dumps({"version": _version(), "health": "down", "problems": [reason]}))
        else:
            print(f"health: down ({reason})")
        return int(Health.DOWN)
    if args.json:
        print(json.dumps(body, default=json_default, indent=2))
    else:
        _print_status(body)
    return int(Health[body["health"].upper()])


async def _quota(db: Any, settings: config.Settings) -> dict[str, Any]:
    from syncd.cli.quota import quota_of
    from syncd.runtime import open_http

    async with open_http() as http:  # K3Context wants one; the quota status sends nothing
        return await quota_of(db, settings, http)


def _when(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _next(job: dict[str, Any]) -> str:
    if job["overdue_since"] is not None:
        return "overdue since " + _when(job["overdue_since"])
    return _when(job["next_run_at"])


def _tasks(tasks: dict[str, Any]) -> str:
    down = [name for name, t in sorted(tasks.items()) if not t.get("up", True)]
    restarts = sum(int(t.get("restarts") or 0) for t in tasks.values())
    return ("down: " + ", ".join(down) if down else f"{len(tasks)} up") + \
        (f", {restarts} restart(s)" if restarts else "")


def _print_replicas(replicas: list[dict[str, Any]], stale_after: float) -> None:
    print(f"\n{'REPLICA':<8} {'KIND':<6} {'COMMAND':<9} {'HOST:PID':<28} {'VERSION':<8} "
          f"{'STARTED':<25} {'LAST BEAT':<25} {'STATE':<7} TASKS")
    for r in replicas:
        print(f"{r['id'][:8]:<8} {r['kind']:<6} {r['command']:<9} "
              f"{(r['host'] + ':' + str(r['pid']))[:28]:<28} {r['version']:<8} "
              f"{_when(r['started_at']):<25} {_when(r['beat_at']):<25} {r['state']:<7} "
              f"{_tasks(r['tasks'])}")
    if not replicas:
        print(f"(no replica beat in the last hour; stale after {stale_after:g}s)")


def _print_status(body: dict[str, Any]) -> None:
    print(f"syncd {body['version']}: {body['health']}"
          + "".join(f"\n  - {p}" for p in body["problems"]))
    _print_replicas(body["replicas"], body["stale_after_seconds"])
    print(f"\n{'JOB':<21} {'EVERY':>6} {'LAST RUN':<25} {'STATUS':<8} {'ITEMS':>6} "
          f"{'LAST SUCCESS':<25} {'NEXT RUN':<39} ERROR")
    for job in body["jobs"]:
        run = job["last_run"] or {}
        every = f"{job['interval_seconds']:.0f}s" if job["interval_seconds"] else "off"
        print(f"{job['job']:<21} {every:>6} {_when(run.get('started_at')):<25} "
              f"{run.get('status', '-'):<8} {run.get('items', 0):>6} "
              f"{_when(job['last_success_at']):<25} {_next(job):<39} "
              f"{run.get('error') or ''}")
    inbox = ", ".join(f"{k} {v}" for k, v in sorted(body["inbox"].items())) or "empty"
    oldest = body["inbox_backlog"]["oldest_pending_seconds"]
    print(f"\ninbox: {inbox}" + (f" (oldest pending {oldest:.0f}s)" if oldest else ""))
    sub = body["subscriptions"]["neolock"]
    print("NeoLock subscription: " + (f"{sub['status']} {sub['url']} (checked "
                                      f"{_when(sub['checked_at'])})" if sub else "none"))
    if "codelocks_quota" in body:
        from syncd.sync.codelocks.status import format_quota

        print("\n" + "\n".join(format_quota(body["codelocks_quota"])))
    print("open drift: " + (", ".join(f"{d['kind']}/{d['severity']} {d['count']}"
                                      for d in body["drift_open"]) or "none"))
    print("alert deliveries: " + (", ".join(f"{d['hook']}/{d['status']} {d['count']}"
                                            for d in body["alert_deliveries"]) or "none"))


async def subscriptions(args: argparse.Namespace, settings: config.Settings,
                        redactor: Redactor) -> int:
    """register/show/delete the NeoLock subscription; delete asks first (or --yes/--dry-run)."""
    from syncd.cli.confirm import confirmed
    from syncd.db import ops
    from syncd.runtime import open_database, open_http
    from syncd.sync import subscription
    from syncd.sync.neolock import neolock_client

    if settings.neolock is None:
        print("syncd subscriptions: no [neolock] section is configured", file=sys.stderr)
        return 1
    if args.action == "delete" and args.dry_run:
        print("dry run: would delete the NeoLock webhook subscription at the vendor; "
              "NeoLock would stop pushing events until `syncd subscriptions register`")
        return 0
    if args.action == "delete" and not await confirmed(
            "Delete the NeoLock webhook subscription (pushes stop)?", yes=args.yes,
            refusal="syncd subscriptions delete: not deleted"):
        return 1
    async with open_database(settings) as db, open_http() as http:
        client = neolock_client(settings.neolock, http)
        if args.action == "register":
            state = await subscription.ensure(db, client, settings, force=args.force)
            if state.action == "skipped":
                print(f"not registered: {state.reason}", file=sys.stderr)
                return 1
            print(f"{state.action}: {state.public_url}<secret>")
        elif args.action == "delete":
            await subscription.delete(db, client)
            print("deleted")
        row = await ops.get_subscription(db, subscription.PROVIDER)
    if args.action == "show":
        if row is None:
            print("no subscription registered by syncd")
            return 1
        print(f"url:           {row.public_url}<secret>\nstatus:        {row.status}\n"
              f"secret:        {row.secret_source}\nregistered at: {_when(row.registered_at)}\n"
              f"checked at:    {_when(row.checked_at)}" +
              (f"\nlast error:    {row.last_error}" if row.last_error else ""))
    return 0

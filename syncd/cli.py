"""The `syncd` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

import syncd
from syncd import cli_audit, cli_drift, cli_netcode, cli_phones, cli_quota, cli_terminals
from syncd import settings as config
from syncd.errors import ConfigError, SyncdError
from syncd.logs import Redactor, configure

log = structlog.get_logger(__name__)

Command = Callable[[argparse.Namespace, config.Settings, Redactor], Coroutine[Any, Any, int]]


async def _run(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd import daemon

    return await daemon.run(settings, redactor, config.SystemdEnv.from_environ())


async def _migrate(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.db.migrate import migrate
    from syncd.runtime import open_database

    async with open_database(settings, apply_migrations=False) as db:
        applied = await migrate(db)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


async def _sync(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.jobs.runner import JobRunner, Outcome
    from syncd.progress import ProgressBar
    from syncd.runtime import build_jobs, open_database, open_http

    if not args.once:
        print("syncd sync: only --once is supported (the daemon schedules jobs)", file=sys.stderr)
        return 2
    async with open_database(settings) as db, open_http() as http:
        jobs = build_jobs(settings, db, http, once=True)
        names = list(jobs) if "all" in args.jobs else args.jobs
        unknown = [n for n in names if n not in jobs]
        if unknown:
            print(f"syncd sync: unknown or disabled job(s): {', '.join(unknown)}; "
                  f"enabled: {', '.join(sorted(jobs))}", file=sys.stderr)
            return 2
        runner = JobRunner(db, scrub=redactor.scrub)
        failed = 0
        for name in names:
            with ProgressBar(name, enabled=sys.stdout.isatty()) as bar:
                result = await runner.run(jobs[name], on_progress=bar.update)
            line = f"{name}: {result.outcome.value} items={result.items} " \
                   f"requests={result.requests} {result.seconds:.2f}s"
            if result.error:
                line += f" error={result.error}"
            print(line)
            failed += result.outcome is Outcome.FAILED
    return 1 if failed else 0


async def _status(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.jobs.scheduler import schedule_of
    from syncd.runtime import build_jobs, open_database, open_http
    from syncd.status import collect_status

    async with open_database(settings) as db, open_http() as http:
        schedule = schedule_of(build_jobs(settings, db, http).values(), settings.jobs)
        status = await collect_status(db, schedule)
        if settings.codelocks is not None:
            from syncd.cli_quota import quota_of

            status["codelocks_quota"] = await quota_of(db, settings.codelocks, http)
    if args.json:
        print(json.dumps(status, default=str, indent=2))
        return 0
    print(f"{'JOB':<20} {'EVERY':>7} {'LAST RUN':<26} {'STATUS':<8} {'ITEMS':>7}  ERROR")
    for job in status["jobs"]:
        run = job["last_run"] or {}
        every = f"{job['interval_seconds']:.0f}s" if job["interval_seconds"] else "off"
        print(f"{job['job']:<20} {every:>7} {str(run.get('started_at', '-'))[:26]:<26} "
              f"{run.get('status', '-'):<8} {run.get('items', 0):>7}  {run.get('error') or ''}")
    inbox = ", ".join(f"{k} {v}" for k, v in sorted(status["inbox"].items())) or "empty"
    print(f"\ninbox: {inbox}")
    sub = status["subscriptions"]["neolock"]
    print("NeoLock subscription: " + (f"{sub['status']} {sub['url']} (checked {sub['checked_at']})"
                                      if sub else "none"))
    if "codelocks_quota" in status:
        from syncd.sync.k3_status import format_quota

        print("\n" + "\n".join(format_quota(status["codelocks_quota"])))
    print("open drift: " + (", ".join(f"{k} {v}" for k, v in status["drift_open"].items())
                            or "none"))
    print("alert deliveries: " + (", ".join(f"{k} {v}" for k, v in
                                            status["alert_deliveries"].items()) or "none"))
    return 0


async def _subscriptions(args: argparse.Namespace, settings: config.Settings,
                         redactor: Redactor) -> int:
    from syncd.db import ops
    from syncd.runtime import open_database, open_http
    from syncd.sync import subscription
    from syncd.sync.neolock import neolock_client

    if settings.neolock is None:
        print("syncd subscriptions: no [neolock] section is configured", file=sys.stderr)
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
              f"secret:        {row.secret_source}\nregistered at: {row.registered_at}\n"
              f"checked at:    {row.checked_at}" +
              (f"\nlast error:    {row.last_error}" if row.last_error else ""))
    return 0


async def _simulate(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.simulators import runner

    return await runner.simulate(args)


async def _demo(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd import demo

    return await demo.run(args, redactor)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="syncd", description=syncd.__doc__)
    parser.add_argument("--version", action="version", version=f"syncd {syncd.__version__}")
    parser.add_argument("--config", help="TOML config file (default: $SYNCD_CONFIG, else "
                        "/etc/syncd/syncd.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon").set_defaults(func=_run)
    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(func=_migrate)
    sub.add_parser("check-config", help="validate the configuration and exit")
    p = sub.add_parser("sync", help="run pull jobs now and exit")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="job names, or 'all'")
    p.add_argument("--once", action="store_true", help="run once and exit (required)")
    p.set_defaults(func=_sync)
    p = sub.add_parser("status", help="jobs, last runs and health")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_status)
    p = sub.add_parser("subscriptions", help="manage the NeoLock webhook subscription")
    p.add_argument("action", choices=["register", "show", "delete"])
    p.add_argument("--force", action="store_true", help="register even if current")
    p.set_defaults(func=_subscriptions)
    p = sub.add_parser("simulate", help="run the vendor simulators on loopback")
    _simulate_arguments(p)
    p.set_defaults(func=_simulate, needs_config=False)
    p = sub.add_parser("demo", help="run a full demo on an embedded database and simulators")
    p.add_argument("--data-dir", default=None, help="state directory (default: a temp dir)")
    p.set_defaults(func=_demo, needs_config=False)
    cli_terminals.add_parser(sub)
    cli_audit.add_parser(sub)
    cli_drift.add_parser(sub)
    cli_phones.add_parser(sub)
    cli_netcode.add_parser(sub)
    cli_quota.add_parser(sub)
    return parser


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from syncd.simulators.runner import add_arguments

    add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `syncd` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args.config)
    except ConfigError as err:
        if args.command == "check-config" or getattr(args, "needs_config", True):
            for line in err.problems:
                print(f"config error: {line}", file=sys.stderr)
            return 1
        settings = config.Settings()
    if args.command == "check-config":
        enabled = [name for name in ("neolock", "knoxguard", "codelocks", "biotime")
                   if getattr(settings, name) is not None]
        print(f"configuration OK; vendors enabled: {', '.join(enabled) or 'none'}")
        return 0
    redactor = configure(settings.logging.level, settings.logging.format,
                         Redactor(settings.secrets()))
    func: Command = args.func
    try:
        return asyncio.run(func(args, settings, redactor))
    except KeyboardInterrupt:
        return 130
    except SyncdError as err:
        print(f"syncd {args.command}: {redactor.scrub(str(err))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

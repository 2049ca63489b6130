"""`syncd migrate` and `syncd db url|psql|dump|restore|reader`: reach, back up and share the data."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from syncd.cli.help import SubParsers, add_command
from syncd.logs import Redactor
from syncd.settings import core as config

READER_ROLE = "syncd_report"  # created by migration 0007: SELECT on report.* only
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `migrate` and `db …` to the CLI."""
    p = add_command(sub, "migrate", "apply pending database migrations (the daemon does at start)",
                    "syncd migrate --status", "syncd migrate --dry-run", "syncd migrate")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--status", action="store_true", help="list migrations, applied or pending")
    how.add_argument("--dry-run", action="store_true", help="list what would be applied, apply none")
    p.set_defaults(func=migrate)
    p = add_command(sub, "db", "reach the database: URL, psql, backups, reporting logins",
                    "syncd db url", "syncd db psql -c 'SELECT * FROM report.sync_runs LIMIT 5'",
                    "syncd db dump -o syncd.dump", "syncd db restore syncd.dump --yes",
                    "syncd db reader grafana --password-file /run/secrets/grafana")
    actions = p.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    url = actions.add_parser("url", help="print the database URL (password masked)")
    url.add_argument("--show-password", action="store_true", help="print the password too")
    url.set_defaults(func=db_url)
    psql = actions.add_parser("psql", help="open psql on the database (other arguments go to psql)",
                              usage="syncd db psql [PSQL ARGUMENTS …]")
    psql.set_defaults(func=db_psql, passthrough=True)  # main() hands unknown arguments over
    dump = actions.add_parser("dump", help="pg_dump the database (custom format) to a file")
    dump.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    dump.set_defaults(func=db_dump)
    restore = actions.add_parser("restore", help="replace the database's contents by a dump")
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument("--yes", action="store_true", help="do it without asking")
    restore.add_argument("--dry-run", action="store_true", help="list the dump's contents only")
    restore.set_defaults(func=db_restore)
    reader = actions.add_parser("reader", help="create or update a read-only login for report.*")
    reader.add_argument("name", help="login role name (lower case, digits, _)")
    reader.add_argument("--password-file", type=Path, metavar="FILE",
                        help="read the password from FILE (default: ask, or stdin when piped)")
    reader.set_defaults(func=db_reader)


async def migrate(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Apply pending migrations, or show them (--status, --dry-run)."""
    from syncd.db import migrate as migrations
    from syncd.runtime import open_database

    async with open_database(settings, apply_migrations=False) as db:
        if args.status or args.dry_run:
            states = await migrations.status(db)
        else:
            applied = await migrations.migrate(db)
            print(f"applied {len(applied)} migration(s)"
                  + (": " + ", ".join(applied) if applied else ""))
            return 0
    if args.status:
        for state in states:
            when = state.applied_at.isoformat(timespec="seconds") if state.applied_at else "pending"
            print(f"{state.migration.name:<40} {when}")
        return 0
    pending = [s.migration.name for s in states if s.applied_at is None]
    print(f"would apply {len(pending)} migration(s)" + "".join(f"\n  {n}" for n in pending))
    return 0


def _masked(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


async def db_url(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Print the DSN: database.url, or the running embedded server's (and its TCP address)."""
    from syncd.db.embedded import running_dsn

    if settings.database.url is not None:
        dsn = settings.database.url.get_secret_value()
        print(dsn if args.show_password else _masked(dsn))
        return 0
    running = running_dsn(settings.data_dir)
    if running is None:
        print(f"syncd db url: the embedded PostgreSQL under {settings.data_dir} is not running "
              "(it runs while `syncd run` does; `syncd db psql` starts it for its session)",
              file=sys.stderr)
        return 1
    print(running)
    if settings.database.embedded_listen:
        print(f"postgresql://READER@{settings.database.embedded_listen}/postgres  "
              "# over TCP, for logins made by `syncd db reader`")
    return 0


async def _tool(name: str, *argv: str, interactive: bool = False) -> int:
    """Run a bundled PostgreSQL program; for an interactive one, Ctrl+C goes to it, not to us."""
    from syncd.db.embedded import bin_path

    proc = await asyncio.create_subprocess_exec(str(bin_path() / name), *argv)
    ignore = interactive and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore else None
    try:
        return await proc.wait()
    except asyncio.CancelledError:  # syncd is stopping (SIGTERM, SIGHUP): so does the tool
        proc.terminate()
        await proc.wait()
        raise
    finally:
        if ignore:
            signal.signal(signal.SIGINT, previous)


async def db_psql(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """psql on the database (starting the embedded server for the session if needed)."""
    from syncd.runtime import open_database

    async with open_database(settings, apply_migrations=False) as db:
        return await _tool("psql", db.dsn, *args.passthrough_args, interactive=True)


async def db_dump(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """pg_dump --format=custom to a file; restore it with `syncd db restore`."""
    from syncd.runtime import open_database

    async with open_database(settings, apply_migrations=False) as db:
        code = await _tool("pg_dump", "--format=custom", "--no-owner", "--file",
                           str(args.output), db.dsn)
    if code == 0:
        print(f"dumped to {args.output} ({args.output.stat().st_size} bytes)")
    return code


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def db_restore(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """pg_restore --clean a dump into the database (stop `syncd run` first)."""
    from syncd.runtime import open_database

    if not args.file.is_file():
        print(f"syncd db restore: {args.file} is not a file", file=sys.stderr)
        return 2
    if args.dry_run:
        return await _tool("pg_restore", "--list", str(args.file))
    if not args.yes and not _confirm("Replace the database's syncd data with this dump?"):
        print("syncd db restore: not restored (confirm, or pass --yes)", file=sys.stderr)
        return 1
    from syncd.db.readers import ensure_group

    async with open_database(settings, apply_migrations=False) as db:
        await ensure_group(db)  # a fresh cluster (a new PostgreSQL major) has no such role yet
        code = await _tool("pg_restore", "--clean", "--if-exists", "--no-owner",
                           "--single-transaction", "--exit-on-error", "--dbname", db.dsn,
                           str(args.file))
    if code == 0:
        print(f"restored {args.file}")
    return code


def _password(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password for the new login: ")
    return sys.stdin.readline().rstrip("\r\n")


async def db_reader(args: argparse.Namespace, settings: config.Settings,
                    redactor: Redactor) -> int:
    """Create (or re-password) a login role in syncd_report: SELECT on report.* only."""
    from syncd.db.readers import ensure_reader
    from syncd.runtime import open_database

    if not _ROLE_NAME.match(args.name):
        print("syncd db reader: the name must be lower case letters, digits and _", file=sys.stderr)
        return 2
    password = _password(args.password_file)
    if len(password) < 12:
        print("syncd db reader: the password must have at least 12 characters", file=sys.stderr)
        return 2
    redactor.update([password])
    async with open_database(settings) as db:
        created = await ensure_reader(db, args.name, password)
    print(f"{'created' if created else 'updated'} login {args.name} in {READER_ROLE} "
          f"(SELECT on report.* only)")
    return 0

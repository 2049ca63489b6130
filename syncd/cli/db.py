"""`syncd migrate` and `syncd db url|psql|dump|restore|reader`: reach, back up and share the data."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from syncd.cli.confirm import confirmed
from syncd.cli.help import SubParsers, add_command, example

if TYPE_CHECKING:
    from syncd.db.pool import Database
    from syncd.logs import Redactor
    from syncd.settings import core as config

READER_ROLE = "syncd_report"  # created by migration 0007: SELECT on report.* only
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_READER_ACTIONS = ("list", "drop")  # words `db reader` takes in place of a NAME


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
                    "syncd db reader grafana --password-file /run/secrets/grafana",
                    "syncd db reader list")
    actions = p.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    url = add_command(actions, "url", "print the database URL (password masked)",
                      "syncd db url", "syncd db url --show-password")
    url.add_argument("--show-password", action="store_true", help="print the password too")
    url.set_defaults(func=db_url)
    psql = add_command(actions, "psql", "open psql on the database (other arguments go to psql)",
                       "syncd db psql", "syncd db psql -c 'TABLE report.sync_runs LIMIT 5'")
    psql.usage = "syncd db psql [PSQL ARGUMENTS …]"
    psql.set_defaults(func=db_psql, passthrough=True)  # main() hands unknown arguments over
    dump = add_command(actions, "dump", "pg_dump the database (custom format) to a file",
                       "syncd db dump -o /backup/syncd-$(date +%F).dump")
    dump.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    dump.set_defaults(func=db_dump)
    restore = add_command(actions, "restore", "replace the database's contents by a dump "
                          "(asks, or --yes)", "syncd db restore syncd.dump --dry-run",
                          "syncd db restore syncd.dump --yes")
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument("--yes", action="store_true", help="do it without asking")
    restore.add_argument("--dry-run", action="store_true", help="list the dump's contents only")
    restore.set_defaults(func=db_restore)
    reader = actions.add_parser(
        "reader", help="read-only logins for report.*: create (new roles only), list, drop",
        description="Reporting logins: members of syncd_report, SELECT on report.* only. NAME "
        "makes a new login, or gives a new password to one of these readers; an existing role "
        "that is anything more (a superuser, syncd's own login, another membership or "
        "attribute) is refused. `list` shows them, `drop NAME` removes one.",
        usage="syncd db reader NAME [--password-file FILE] | list | drop NAME [--yes]",
        epilog=example("syncd db reader grafana --password-file /run/secrets/grafana",
                       "syncd db reader list", "syncd db reader drop grafana --yes"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    reader.add_argument("name", metavar="NAME|list|drop",
                        help="login role name (lower case, digits, _), or list, or drop")
    reader.add_argument("target", nargs="?", metavar="NAME", help="with drop: the login to drop")
    reader.add_argument("--password-file", type=Path, metavar="FILE",
                        help="read the password from FILE (default: ask, or stdin when piped)")
    reader.add_argument("--yes", action="store_true", help="drop without asking")
    reader.set_defaults(func=db_reader)

async def migrate(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """Apply pending migrations, or show them (--status, --dry-run)."""
    from syncd.db import migrate as migrations
    from syncd.runtime import open_database

    # Only applying migrations creates an embedded database; --status and --dry-run look.
    looking = args.status or args.dry_run
    async with open_database(settings, apply_migrations=False, create=not looking) as db:
        if looking:
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


def libpq_target(dsn: str) -> tuple[str, str | None]:
    """`dsn` without its password (user info or `password=` parameter), and the password.

    PostgreSQL's programs get the password through PGPASSWORD: a command line is readable by
    every user of the host (ps, /proc/PID/cmdline), a process's environment only by its owner.
    """
    parts = urlsplit(dsn)
    password = None
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo, _, secret = userinfo.partition(":")
        password = unquote(secret)
    kept = []
    for pair in parts.query.split("&") if parts.query else []:
        key, _, value = pair.partition("=")
        if unquote(key) == "password":
            password = unquote(value)  # libpq: a parameter overrides the user info
        else:
            kept.append(pair)
    netloc = f"{userinfo}{at}{hosts}"
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(kept))), password


async def _tool(name: str, *argv: str, interactive: bool = False, password: str | None = None,
                stdout: IO[Any] | int | None = None) -> int:
    """Run a bundled PostgreSQL program; for an interactive one, Ctrl+C goes to it, not to us.

    `password` reaches it as PGPASSWORD, never on its command line.
    """
    from syncd.db.embedded import bin_path

    env = None if password is None else {**os.environ, "PGPASSWORD": password}
    proc = await asyncio.create_subprocess_exec(str(bin_path() / name), *argv, env=env,
                                                stdout=stdout)
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
        dsn, password = libpq_target(db.dsn)
        return await _tool("psql", dsn, *args.passthrough_args, interactive=True,
                           password=password)


async def db_dump(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    """pg_dump --format=custom to a file, readable by its owner only; restore it with `db restore`.

    The dump goes to a 0600 temporary file beside the output (made so by mkstemp, never wider),
    renamed over it only once pg_dump succeeds: an older dump survives a failed one.
    """
    from syncd.runtime import open_database

    output: Path = args.output
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial",
                                       dir=output.parent)
    except OSError as err:
        print(f"syncd db dump: cannot write in {output.parent} ({err.strerror})", file=sys.stderr)
        return 1
    code = 1
    try:
        with os.fdopen(fd, "wb") as sink:
            async with open_database(settings, apply_migrations=False) as db:
                dsn, password = libpq_target(db.dsn)
                code = await _tool("pg_dump", "--format=custom", "--no-owner", dsn,
                                   password=password, stdout=sink)
    finally:
        size = _keep_dump(partial, output) if code == 0 else _discard(partial)
    if code == 0:
        print(f"dumped to {output} ({size} bytes, mode 0600)")
    return code


def _keep_dump(partial: str, output: Path) -> int:
    """Rename the finished dump over `output`; its size."""
    os.replace(partial, output)
    return output.stat().st_size


def _discard(partial: str) -> int:
    Path(partial).unlink(missing_ok=True)
    return 0

async def db_restore(args: argparse.Namespace, settings: config.Settings,
                     redactor: Redactor) -> int:
    """pg_restore --clean a dump into the database (stop `syncd run` first)."""
    from syncd.runtime import open_database

    if not args.file.is_file():
        print(f"syncd db restore: {args.file} is not a file", file=sys.stderr)
        return 2
    if args.dry_run:
        return await _tool("pg_restore", "--list", str(args.file))
    if not await confirmed("Replace the database's syncd data with this dump?", yes=args.yes,
                           refusal="syncd db restore: not restored"):
        return 1
    from syncd.db.readers import ensure_group

    # A restore may create the embedded database: the upgrade path restores into a new one.
    async with open_database(settings, apply_migrations=False, create=True) as db:
        await ensure_group(db)  # a fresh cluster (a new PostgreSQL major) has no such role yet
        dsn, password = libpq_target(db.dsn)
        code = await _tool("pg_restore", "--clean", "--if-exists", "--no-owner",
                           "--single-transaction", "--exit-on-error", "--dbname", dsn,
                           str(args.file), password=password)
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
    """`db reader NAME`, `db reader list`, `db reader drop NAME`: reporting logins."""
    from syncd.runtime import open_database

    if args.name == "list":
        if args.target is not None:
            return _reader_usage("list takes no NAME")
        async with open_database(settings, apply_migrations=False) as db:
            return await _list_readers(db)
    if args.name == "drop":
        if args.target is None or not _ROLE_NAME.match(args.target):
            return _reader_usage("drop needs the NAME of a login (lower case letters, digits, _)")
        if not await confirmed(f"Drop login {args.target}?", yes=args.yes,
                               refusal="syncd db reader drop: not dropped"):
            return 1
        async with open_database(settings, apply_migrations=False) as db:
            return await _drop_reader(db, args.target)
    if args.target is not None:
        return _reader_usage(f"unexpected {args.target!r} after the NAME")
    if not _ROLE_NAME.match(args.name) or args.name.startswith("pg_"):
        return _reader_usage("the name must be lower case letters, digits and _ (not pg_…)")
    password = _password(args.password_file)
    if len(password) < 12:
        print("syncd db reader: the password must have at least 12 characters", file=sys.stderr)
        return 2
    redactor.update([password])
    return await _make_reader(settings, args.name, password)


def _reader_usage(problem: str) -> int:
    print(f"syncd db reader: {problem} (usage: syncd db reader NAME | list | drop NAME)",
          file=sys.stderr)
    return 2


async def _make_reader(settings: config.Settings, name: str, password: str) -> int:
    from syncd.db.readers import GROUP, ensure_reader
    from syncd.errors import ReaderRefused
    from syncd.runtime import open_database

    async with open_database(settings, apply_migrations=False) as db:
        try:
            created = await ensure_reader(db, name, password)
        except ReaderRefused as err:
            print(f"syncd db reader: refused: {err}", file=sys.stderr)
            return 1
    print(f"{'created' if created else 'updated'} login {name} in {GROUP} "
          f"(SELECT on report.* only)")
    return 0


async def _list_readers(db: Database) -> int:
    from syncd.db.readers import reader_roles

    roles = await reader_roles(db)
    for role in roles:
        why = role.refusal()
        state = "reader" if why is None else f"not a plain reader: {why}"
        print(f"{role.name:<24} {'login' if role.can_login else 'nologin':<8} {state}")
    if not roles:
        print("no reporting logins (make one with `syncd db reader NAME`)", file=sys.stderr)
    return 0


async def _drop_reader(db: Database, name: str) -> int:
    from syncd.db.readers import drop_reader
    from syncd.errors import ReaderRefused

    try:
        opened, ended = await drop_reader(db, name)
    except ReaderRefused as err:
        print(f"syncd db reader: refused: {err}", file=sys.stderr)
        return 1
    left = opened - ended
    print(f"dropped login {name}" + (f"; ended {ended} open session(s)" if ended else "")
          + (f"; {left} session(s) stay open until they disconnect (syncd's user may not end "
             "them)" if left else ""))
    return 0

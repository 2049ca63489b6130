"""The `syncd` command line: data on stdout, logs on stderr, one line per problem.

Each area adds its subcommands from its own `syncd/cli_<area>.py` with one `add_parser(sub)` line
in `build_parser()`. The options every subcommand shares (`--config`, `--log-level`, `--quiet`)
are added to every subparser afterwards, so they work before or after the subcommand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import syncd
from syncd.cli import alerts as cli_alerts
from syncd.cli import audit as cli_audit
from syncd.cli import completion as cli_completion
from syncd.cli import config as cli_config
from syncd.cli import db as cli_db
from syncd.cli import devices as cli_devices
from syncd.cli import drift as cli_drift
from syncd.cli import events as cli_events
from syncd.cli import jobs as cli_jobs
from syncd.cli import k3 as cli_k3
from syncd.cli import netcode as cli_netcode
from syncd.cli import phones as cli_phones
from syncd.cli import quota as cli_quota
from syncd.cli import terminals as cli_terminals
from syncd.cli.help import add_command, example
from syncd.jobs import catalog

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config

Command = Callable[[argparse.Namespace, "config.Settings", "Redactor"], Coroutine[Any, Any, int]]
LEVELS = ("debug", "info", "warning", "error")


async def _run(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd import daemon
    from syncd.settings.core import SystemdEnv

    return await daemon.run(settings, redactor, SystemdEnv.from_environ())


async def _simulate(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.devtools.simulators import runner

    return await runner.simulate(args)


async def _demo(args: argparse.Namespace, settings: config.Settings, redactor: Redactor) -> int:
    from syncd.devtools.demo import run as demo

    return await demo.run(args, redactor)


async def _version(args: argparse.Namespace, settings: object, redactor: object) -> int:
    print(f"syncd {syncd.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="syncd", description=syncd.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=example("syncd check-config --config /etc/syncd/syncd.toml",
                       "syncd status --json | jq .jobs", "syncd db psql -c 'TABLE report.sync_runs'"))
    parser.add_argument("--version", action="version", version=f"syncd {syncd.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_command(sub, "run", "run the daemon (web server, scheduler, inbox worker)",
                "syncd run --config /etc/syncd/syncd.toml").set_defaults(func=_run, daemon=True)
    cli_jobs.add_parser(sub)
    cli_config.add_parser(sub)
    cli_db.add_parser(sub)
    p = add_command(sub, "simulate", "run the vendor simulators on loopback (a playground)",
                    "syncd simulate --port-base 9100", "syncd simulate push --count 5")
    _simulate_arguments(p)
    p.set_defaults(func=_simulate, needs_config=False)
    p = add_command(sub, "demo", "run a full demo on an embedded database and the simulators",
                    "syncd demo", "syncd demo --keep", "syncd demo --data-dir ./demo-state")
    p.add_argument("--data-dir", default=None, help="state directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true",
                   help="leave the operator console browsable (jobs re-run) until Ctrl-C")
    p.set_defaults(func=_demo, needs_config=False)
    cli_terminals.add_parser(sub)
    cli_audit.add_parser(sub)
    cli_drift.add_parser(sub)
    cli_events.add_parser(sub)
    cli_alerts.add_parser(sub)
    cli_devices.add_parser(sub)
    cli_phones.add_parser(sub)
    cli_netcode.add_parser(sub)
    cli_k3.add_parser(sub)
    cli_quota.add_parser(sub)
    cli_completion.add_parser(sub)
    add_command(sub, "version", "print syncd's version", "syncd version").set_defaults(
        func=_version, needs_config=False)
    _add_common_options(parser)  # last: every subcommand registered above gets --config etc.
    return parser


def _add_common_options(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """--config, --log-level and --quiet on the top parser and on every (nested) subcommand."""
    # Only the top level has defaults: a subcommand's copy must not overwrite a value given
    # before the subcommand with its own default.
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("common options")
    group.add_argument("--config", metavar="FILE", default=default,
                       help="TOML config file (default: $SYNCD_CONFIG, else /etc/syncd/syncd.toml)")
    group.add_argument("--log-level", choices=LEVELS, default=default,
                       help="log level on stderr (default: logging.level for `run`, else warning)")
    group.add_argument("-q", "--quiet", action="store_true", default=default if not top else False,
                       help="only errors on stderr (same as --log-level error)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_common_options(child, top=False)


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from syncd.devtools.simulators.options import add_arguments

    add_arguments(parser)


def _log_level(args: argparse.Namespace, settings: config.Settings) -> str:
    if args.quiet:
        return "error"
    if args.log_level:
        return str(args.log_level)
    # The daemon logs what its config says; a one-shot command prints its result on stdout and
    # keeps stderr for warnings and errors unless asked.
    return settings.logging.level if getattr(args, "daemon", False) else "warning"


def load_settings(args: argparse.Namespace) -> config.Settings:
    """The validated settings for this command line (ConfigError lists every problem)."""
    from syncd.settings import core as config

    return config.load(args.config, known_jobs=[spec.name for spec in catalog.JOBS])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `syncd` console script and of `python -m syncd`."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Only now, with help and usage errors answered: what running a command needs.
    from syncd.cli.progress import Terminal
    from syncd.errors import ConfigError, SyncdError
    from syncd.logs import Redactor, configure
    from syncd.settings import core as config

    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.passthrough_args = extra  # e.g. `syncd db psql -c 'TABLE report.phones'`
    args.parser = parser  # `syncd completion` describes the parser it was called through
    needs_config = getattr(args, "needs_config", True)
    # The exit code when the command cannot do its work at all (config, a SyncdError): 1, but 3
    # (UNKNOWN) for `status`, a monitoring check that then could not tell.
    failed = int(getattr(args, "failure_exit", 1))
    try:
        settings = load_settings(args)
    except ConfigError as err:
        if needs_config:
            for line in err.problems:
                print(f"config error: {line}", file=sys.stderr)
            return failed
        settings = config.Settings()
    if needs_config and not args.config and config.nothing_configured():
        print(f"syncd {args.command}: no configuration: no --config, no $SYNCD_CONFIG, no "
              f"{config.DEFAULT_CONFIG_PATH} and no SYNCD_* variable. Pass --config FILE, or set "
              "SYNCD_DATA_DIR=.syncd to use an embedded database in ./.syncd", file=sys.stderr)
        return failed
    # Logs go to stderr (stdout is for data); for one-shot commands through a Terminal, which
    # keeps `sync`'s progress bar below the log lines.
    stream: Any = sys.stderr
    if not getattr(args, "daemon", False):
        stream = args.terminal = Terminal(sys.stderr)
    redactor = configure(_log_level(args, settings), settings.logging.format,
                         Redactor(settings.secrets()), stream=stream)
    func: Command = args.func
    try:
        return asyncio.run(_guarded(func, args, settings, redactor))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `syncd status --json | head`: the reader left early, as is its right
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 128 + signal.SIGPIPE
    except SyncdError as err:
        print(f"syncd {args.command}: {redactor.scrub(str(err))}", file=sys.stderr)
        return failed


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


async def _guarded(func: Command, args: argparse.Namespace, settings: config.Settings,
                   redactor: Redactor) -> int:
    """Run a command; a stopping signal cancels it, so its embedded PostgreSQL is stopped too.

    The daemon installs its own handlers (it drains first); SIGINT is asyncio's own.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []
    own = () if getattr(args, "daemon", False) else STOP_SIGNALS

    def stop(sig: int) -> None:
        received.append(sig)
        task.cancel()

    if threading.current_thread() is not threading.main_thread():
        own = ()  # only the main thread receives signals (tests call main() from a thread)
    for sig in own:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await func(args, settings, redactor)
    except asyncio.CancelledError:
        if not received:
            raise
        return 128 + received[0]
    finally:
        for sig in own:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


if __name__ == "__main__":
    sys.exit(main())

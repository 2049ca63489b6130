"""`syncd check-config [--connect]` and `syncd config show`: configuration that tells the truth."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from syncd.cli.help import SubParsers, add_command
from syncd.jobs import catalog

if TYPE_CHECKING:
    from syncd.logs import Redactor
    from syncd.settings import core as config


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `check-config` and `config show` to the CLI."""
    p = add_command(sub, "check-config", "validate the configuration: one line per problem, exit 1",
                    "syncd check-config --config /etc/syncd/syncd.toml",
                    "syncd check-config --connect   # also the database and each vendor's login",
                    "syncd check-config --connect --spend-codelocks-call")
    p.add_argument("--connect", action="store_true",
                   help="also reach the database and make one cheap authenticated call per "
                   "vendor in use (Codelocks only with --spend-codelocks-call: its calls are "
                   "billed)")
    p.add_argument("--spend-codelocks-call", action="store_true",
                   help="with --connect: make one billed Codelocks call (the first access key's "
                   "account), counted in the quota ledger from the operators' reserve")
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                   help="per check with --connect (default 15)")
    p.set_defaults(func=check_config)
    p = add_command(sub, "config", "show the effective configuration (secrets masked), or the "
                    "documented example", "syncd config show",
                    "SYNCD_SERVER__PORT=9000 syncd config show --json",
                    "syncd config example > /etc/syncd/syncd.toml")
    actions = p.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    example = add_command(actions, "example", "print syncd.toml.example (every key, documented), "
                          "as shipped with this version", "syncd config example > syncd.toml",
                          "syncd config example | diff - /etc/syncd/syncd.toml")
    example.set_defaults(func=print_example, needs_config=False)
    show = add_command(actions, "show", "each key's value and where it came from",
                       "syncd config show", "syncd config show --json | jq '.[] | "
                       "select(.origin | startswith(\"env\"))'")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_config)


def notices(settings: config.Settings, table: catalog.Table = catalog.JOBS) -> list[str]:
    """Warnings about a valid configuration: unused vendors, planned jobs, missing public_url."""
    from syncd.settings.checks import config_warnings

    found = config_warnings(settings)
    for vendor in catalog.unused_vendors(settings, table):
        found.append(f"[{vendor}] is configured, but nothing in this version uses it yet")
    by_name = {spec.name: spec for spec in table}
    for name in settings.jobs:
        spec = by_name.get(name)
        if spec is not None and spec.factory is None:
            found.append(f"[jobs.{name}]: this job is not built in this version yet; "
                         "the section is ignored")
    return found


async def check_config(args: argparse.Namespace, settings: config.Settings,
                       redactor: Redactor) -> int:
    """Print notices and which vendors are in use; with --connect, reach each of them."""
    if args.spend_codelocks_call and not args.connect:
        print("syncd check-config: --spend-codelocks-call needs --connect", file=sys.stderr)
        return 2
    for line in notices(settings):
        print(f"config warning: {line}", file=sys.stderr)
    used = catalog.used_vendors(settings)
    print(f"configuration OK; vendors enabled: {', '.join(used) or 'none'}")
    if not args.connect:
        return 0
    failed = 0
    async for name, failure, text in _connect_checks(settings, args.timeout,
                                                     spend=args.spend_codelocks_call):
        print(f"{name}: {redactor.scrub(text)}")
        failed += failure
    return 1 if failed else 0


# Vendors whose every call is billed (Codelocks Connect): --connect calls them only when asked.
BILLED = ("codelocks",)
# --connect before the first start: the embedded database does not exist yet, and is no failure.
NOT_YET = "embedded, not created yet (`syncd run` or `syncd migrate` creates it)"


async def _connect_checks(settings: config.Settings, timeout: float, *, spend: bool = False
                          ) -> AsyncIterator[tuple[str, bool, str]]:
    """(check, failed, what it found) for the database and each vendor in use."""
    from syncd.errors import DatabaseMissing, SyncdError
    from syncd.runtime import open_database, open_http

    database = False
    try:
        async with asyncio.timeout(timeout):
            async with open_database(settings, apply_migrations=False, wait=timeout) as db:
                await db.ping(timeout=timeout)
        database = True
        yield "database", False, "ok"
    except DatabaseMissing:  # before the first start: `syncd run` creates it, nothing is wrong
        yield "database", False, NOT_YET
    except (TimeoutError, SyncdError) as err:
        yield "database", True, f"unreachable: {err or 'timed out'}"
    async with open_http() as http:
        for vendor in catalog.used_vendors(settings):
            if vendor in BILLED and not spend:
                yield vendor, False, "not called: its calls are billed against the quota " \
                    "(`--spend-codelocks-call` makes one; `syncd quota` shows the ledger)"
                continue
            if vendor in BILLED and not database:
                yield vendor, False, "not called: every call is counted in the quota ledger " \
                    "first, and the database is not reachable"
                continue
            failure, text = False, "ok"
            try:
                async with asyncio.timeout(timeout):
                    if vendor in BILLED:
                        text = await _codelocks_call(settings, http, timeout)
                    else:
                        await _vendor_call(settings, vendor, http)
            except TimeoutError:
                failure, text = True, f"no answer within {timeout:g}s"
            except SyncdError as err:
                failure, text = True, str(err)
            yield vendor, failure, text


async def _codelocks_call(settings: config.Settings, http: Any, timeout: float) -> str:
    """One billed Codelocks call, not retried, counted in the ledger from the operators' reserve."""
    from syncd.runtime import open_database
    from syncd.sync.codelocks.jobs import K3Context
    from syncd.sync.codelocks.quota import UTILITY
    from syncd.vendors.pacing import RetryPolicy

    assert settings.codelocks is not None
    async with open_database(settings, apply_migrations=False, wait=timeout) as db:
        # No retry: a retry would be a second billed call.
        k3 = K3Context(db, settings.codelocks, http, retry=RetryPolicy(max_retries=0))
        await k3.client(None).account(settings.codelocks.access_keys[0])
        usage = await k3.ledger.usage(UTILITY)
    return (f"ok (1 billed call, counted from the operators' reserve: {usage.calls} of "
            f"{usage.quota} utility calls used this period, {usage.operator_calls} by operators)")


async def _vendor_call(settings: config.Settings, vendor: str, http: Any) -> None:
    """One cheap authenticated call to `vendor`."""
    from syncd.errors import SyncdError

    if vendor == "neolock" and settings.neolock is not None:
        from syncd.sync.neolock import neolock_client

        await neolock_client(settings.neolock, http).token()
    elif vendor == "knoxguard" and settings.knoxguard is not None:
        from syncd.sync.knoxguard import knoxguard_client

        await knoxguard_client(settings.knoxguard, http).authorization()
    elif vendor == "biotime" and settings.biotime is not None:
        from syncd.sync.biotime import biotime_client

        async for _ in biotime_client(settings.biotime, http).iter_terminals():
            break  # the first page proves the login and the API
    else:
        raise SyncdError(f"no connection check for {vendor} in this version")


def example_text() -> str:
    """syncd.toml.example as shipped in the package (the same file as systemd/ in the source)."""
    import importlib.resources

    return (importlib.resources.files("syncd.settings") / "syncd.toml.example").read_text(
        encoding="utf-8")


async def print_example(args: argparse.Namespace, settings: object, redactor: object) -> int:
    """Print the example configuration."""
    print(example_text(), end="")
    return 0


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and (value or not prefix):  # lists (alerts.hooks) are values
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def origins(path: str | None) -> dict[str, str]:
    """Dotted key → where its value came from: an environment variable or the TOML file."""
    from syncd.settings import checks
    from syncd.settings import core as config

    source = config.config_path(path)
    data = checks.read_toml(source)
    found: dict[str, str] = {}
    for key, _ in _flatten(data):
        name = key[: -len("_file")] if key.endswith("_file") else key
        found[name] = f"file {source}" + (f" ({key.rsplit('.', 1)[-1]})" if name != key else "")
    for var in config.syncd_environ():
        where = checks.env_path(var, config.Settings)
        if isinstance(where, tuple):
            dotted = ".".join(where)
            base = dotted[: -len("_file")] if dotted.endswith("_file") else dotted
            found[base] = f"env {var}"
    return found


def effective(settings: config.Settings, path: str | None) -> list[dict[str, Any]]:
    """Every key with its value (secrets masked) and origin."""
    known = origins(path)
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")):
        origin = known.get(key) or next((o for k, o in known.items() if key.startswith(k + ".")),
                                        "default")
        rows.append({"key": key, "value": value, "origin": origin})
    return rows


async def show_config(args: argparse.Namespace, settings: config.Settings,
                      redactor: Redactor) -> int:
    """Print `key = value  # origin` for every key (or JSON); secrets as `**********`."""
    rows = effective(settings, args.config)
    for row in rows:
        row["value"] = redactor.scrub(row["value"])  # a secret inside a URL, say
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(f"{r['key']} = {json.dumps(r['value'])}") for r in rows)
    for row in rows:
        text = f"{row['key']} = {json.dumps(row['value'])}"
        print(f"{text:<{width}}  # {row['origin']}")
    return 0

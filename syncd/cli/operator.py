"""What commands that act share: who the operator is, times given as `--since`, and text safe
for a terminal. Light: imported while the parser is built."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # vendor text must not drive the user's terminal
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def operator() -> str:
    """The operator's name for the action log: `cli:<login name>`, else `cli`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment (e.g. a container)
        return "cli"


def since_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A `--since` time: ISO 8601 (UTC if it has no offset) or a duration ago like 2h or 7d."""
    now = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time nor a duration like 2h or 7d") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def clean(value: object) -> str:
    """`value` as text with control characters shown as `?` ('-' for None)."""
    return "-" if value is None else _CONTROL.sub("?", str(value))


def when(value: dt.datetime | None) -> str:
    """A time to the second, with its zone ('-' for None)."""
    return "-" if value is None else value.isoformat(timespec="seconds")


def dumps(value: Any) -> str:
    """JSON for a command's --json output: times in ISO 8601 with their zone."""
    return json.dumps(value, indent=2, default=lambda v: v.isoformat()
                      if isinstance(v, dt.datetime) else str(v))


def positive(text: str) -> int:
    """A count from the command line (argparse type): a whole number above 0."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{clean(text)!r} is not a whole number above 0")
    return int(text)


def ids(texts: list[str], what: str) -> list[int]:
    """Positive integer ids from the command line; ArgumentTypeError names a bad one."""
    found = []
    for text in texts:
        if not text.isdigit() or int(text) <= 0:
            raise argparse.ArgumentTypeError(f"{clean(text)!r} is not {what} id (a number)")
        found.append(int(text))
    return found

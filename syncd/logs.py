"""structlog configuration: JSON lines in production, console on a terminal, secrets redacted.

Logs go to stderr: stdout carries the data a command prints.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

import structlog

REDACTED = "[REDACTED]"
_SCALARS = frozenset({int, float, bool})  # values that cannot hold a secret
# A hook URL's last segment is a secret: whatever cut a path short (a repr shortened to 80
# characters) must not let a prefix of it through, so any hook path loses that segment.
_HOOK_PATH = re.compile(r"(/hooks/[A-Za-z0-9_-]+/)(?!\{secret\})[^\s\"'<>\\]+")


_level = logging.NOTSET  # the level configure() set; until then everything is logged
# The id of the HTTP request being handled: set by the request bookkeeping (one ContextVar.set, where
# structlog's bind_contextvars costs a function call and a registry lookup on every request)
# and added to every line logged meanwhile.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("syncd_request_id",
                                                                        default=None)


def _add_request_id(_logger: Any, _method: str,
                    event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def enabled(level: int) -> bool:
    """Whether a line at `level` would be logged: hot paths ask before building one."""
    return level >= _level


class Redactor:
    """A structlog processor that replaces every configured secret, wherever it appears, by REDACTED."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Add secrets to redact (e.g. a generated webhook secret, a fetched token)."""
        # Longest first, so a secret containing another is replaced whole. Very short values
        # would shred ordinary words and are refused by settings anyway.
        merged = {*self.secrets, *(s for s in secrets if len(s) >= 4)}
        self.secrets = sorted(merged, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        """Return `value` with secrets replaced, recursing into containers."""
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return _HOOK_PATH.sub(_redact_hook, value) if "/hooks/" in value else value
        if value is None or type(value) in _SCALARS:  # most of a line: nothing to look into
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, _logger: Any, _method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        scrub = self.scrub
        return {k: v if v is None or type(v) in _SCALARS else scrub(v)
                for k, v in event_dict.items()}


def _redact_hook(match: re.Match[str]) -> str:
    # A function, not a "\g<1>" template: re parses a template on every sub() call.
    return match.group(1) + REDACTED


def _timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
               ) -> MutableMapping[str, Any]:
    """ISO 8601 UTC with microseconds ("2026-12-07T14:19:26.632176Z"), as structlog's
    TimeStamper(fmt="iso", utc=True) writes it, the date and time formatted once a second."""
    global _second
    now = time.time()
    second = int(now)
    cached, text = _second  # read once: a line logged from another thread may replace it
    if second != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    event_dict["timestamp"] = f"{text}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


_second: tuple[int | None, str] = (None, "")  # the second last formatted, and its text


def configure(level: str = "info", fmt: Literal["auto", "json", "console"] = "auto",
              redactor: Redactor | None = None, stream: Any = None) -> Redactor:
    """Configure structlog once for the process; return the redactor so secrets can be added."""
    global _level
    redactor = redactor or Redactor()
    stream = stream or sys.stderr  # stdout is for data (`syncd status --json | jq`)
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        _timestamp,
    ]
    tail: list[Any]
    if console:
        tail = [structlog.processors.format_exc_info, redactor,
                structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    else:
        # Tracebacks without local variables: a local can hold a request body or a hook path.
        tail = [structlog.processors.ExceptionRenderer(
                    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)), redactor,
                structlog.processors.JSONRenderer()]
    # Libraries that log through the standard library (aiohttp, asyncpg, APScheduler) get the same
    # renderer and the same redaction.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelNamesMapping()[level.upper()], logging.INFO))
    # Chatty at INFO (every pg_ctl command, every job added): keep their warnings and errors.
    for name in ("aiohttp.access", "pgserver", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.WriteLoggerFactory(stream),  # print() without its overhead
        cache_logger_on_first_use=False,
    )
    return redactor

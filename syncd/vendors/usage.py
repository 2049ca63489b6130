"""Who sent each vendor request: every HTTP attempt is counted once, against its unit of work.

The job runner and the inbox worker bind a `Usage` in a ContextVar around the work they do;
`VendorHttp` records each attempt it sends (retries and token calls included) into whichever
`Usage` is bound in the sending task's context. Tasks started inside the work (a gather of device
GETs) inherit the binding, so concurrent units sharing one client never count each other's traffic.

Prometheus counts go through an aiohttp `TraceConfig` on the daemon's client session, labelled by
vendor, a low-cardinality route template (never a path holding ids or secrets) and an outcome.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp

_SEGMENT_ID = re.compile(r"\d|^[A-Za-z0-9_-]{25,}$|[^A-Za-z0-9_.-]")
_VERSION = re.compile(r"^v\d+(\.\d+)*$")  # /kcs/v1.1/kg: part of the route, not an id


@dataclasses.dataclass
class Usage:
    """The vendor requests one unit of work sent, in total and by (vendor, route template)."""

    requests: int = 0
    by_route: collections.Counter[tuple[str, str]] = dataclasses.field(
        default_factory=collections.Counter)

    def add(self, vendor: str, route: str) -> None:
        """Count one attempt sent."""
        self.requests += 1
        self.by_route[(vendor, route)] += 1


_CURRENT: contextvars.ContextVar[Usage | None] = contextvars.ContextVar(
    "syncd_vendor_usage", default=None)


@contextlib.contextmanager
def counting(usage: Usage) -> Iterator[Usage]:
    """Count the vendor requests sent inside this block (and tasks it starts) into `usage`."""
    token = _CURRENT.set(usage)
    try:
        yield usage
    finally:
        _CURRENT.reset(token)


def record(vendor: str, route: str) -> None:
    """Count one attempt against the unit of work bound in this context, if any."""
    usage = _CURRENT.get()
    if usage is not None:
        usage.add(vendor, route)


def route_template(path: str) -> str:
    """A path with its variable segments (anything with a digit, long tokens, escapes) as {id}."""
    return "/".join("{id}" if _SEGMENT_ID.search(part) and not _VERSION.match(part) else part
                    for part in path.split("/"))


def trace_request_ctx(vendor: str, route: str) -> SimpleNamespace:
    """What VendorHttp hands each request for the trace config below."""
    return SimpleNamespace(vendor=vendor, route=route)


Observe = Callable[[str, str, str], None]  # (vendor, route, outcome)


def trace_config(observe: Observe) -> aiohttp.TraceConfig:
    """An aiohttp TraceConfig calling `observe` once per vendor attempt, with its outcome.

    Outcomes: "2xx", "3xx", "4xx", "429", "5xx", or "error" (no HTTP answer).
    """
    config = aiohttp.TraceConfig()

    def labels(ctx: Any) -> tuple[str, str] | None:
        info = getattr(ctx, "trace_request_ctx", None)
        if not isinstance(info, SimpleNamespace):
            return None  # not a VendorHttp request
        return str(info.vendor), str(info.route)

    async def on_end(_session: aiohttp.ClientSession, ctx: Any,
                     params: aiohttp.TraceRequestEndParams) -> None:
        found = labels(ctx)
        if found is not None:
            status = params.response.status
            observe(*found, "429" if status == 429 else f"{status // 100}xx")

    async def on_exception(_session: aiohttp.ClientSession, ctx: Any,
                           _params: aiohttp.TraceRequestExceptionParams) -> None:
        found = labels(ctx)
        if found is not None:
            observe(*found, "error")

    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config

"""Rendering console pages: Jinja2 (through aiohttp-jinja2), secrets scrubbed, strict headers.

Why Jinja2 rather than string templates: every value is HTML-escaped unless marked safe
(autoescape), one layout serves every page (template inheritance), `url()` builds links from
route names, and one `finalize` hook passes every value a page prints through the log redactor,
so a configured secret cannot reach a page even if it got into the data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

import syncd
from syncd.logs import Redactor
from syncd.web import openapi

# No script at all; styles and images only from syncd itself; forms post only to it; no framing.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
F = TypeVar("F", bound=Callable[..., Any])
NAV = (("console.overview", "Overview"), ("console.drift", "Drift"), ("console.alerts", "Alerts"),
       ("console.quota", "Codelocks quota"), ("console.fleet", "Fleet"))


HTML_404 = {"description": "no such thing: an HTML page saying so",
            "content": {"text/html": {"schema": {"type": "string"}}}}


def documented(summary: str, *, query: tuple[str, ...] = (), path: str | None = None,
               missing: bool = False) -> Callable[[F], F]:
    """Describe a console page in the OpenAPI document: an HTML page (admin listener)."""
    parameters = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                  for name in query]
    if path:
        parameters.append({"name": path, "in": "path", "required": True,
                           "schema": {"type": "string"}})
    responses: dict[int, str | dict[str, Any]] = {200: "the page (HTML)"}
    if missing:
        responses[404] = HTML_404
    return openapi.documented(f"Console: {summary} (admin listener)", responses,
                              tags=["console"], parameters=parameters, content_type="text/html")


def when(value: dt.datetime | None) -> str:
    """A time in UTC to the second, or a dash."""
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min, 2.5 h, 3.0 d."""
    if value is None:
        return "—"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


@jinja2.pass_context
def relative(context: Any, value: dt.datetime | None) -> str:
    """How long ago (or from now) `value` is, against the page's `now`."""
    if value is None:
        return ""
    delta = (value - context["now"]).total_seconds()
    return f"in {seconds(delta)}" if delta > 0 else f"{seconds(-delta)} ago"


def compact_json(value: Any) -> str:
    """A value as one line of JSON (action details, plans)."""
    return json.dumps(value, default=str, separators=(", ", ": "), sort_keys=True)


def setup(app: web.Application, redactor: Redactor) -> None:
    """Install the console's template environment on `app`."""

    def scrub(value: Any) -> Any:
        # Runs on every printed value before escaping: a secret never reaches the page.
        if isinstance(value, Markup):  # already safe; the redaction mark adds no markup
            return Markup(redactor.scrub(str(value)))  # noqa: S704
        return redactor.scrub(value) if isinstance(value, str) else value

    filters: dict[str, Callable[..., str]] = {
        "when": when, "seconds": seconds, "relative": relative, "json": compact_json}
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("syncd.web.console", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, finalize=scrub,
        trim_blocks=True, lstrip_blocks=True, default_helpers=True, filters=filters)


def page(request: web.Request, template: str, context: Mapping[str, Any], *,
         current: str | None = None, status: int = 200) -> web.Response:
    """Render a console page with the layout's context and the security headers."""
    base = {"nav": NAV, "current": current, "version": syncd.__version__,
            "now": context.get("now") or dt.datetime.now(dt.UTC)}
    body = aiohttp_jinja2.render_string(template, request, {**base, **context})
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response

"""OpenAPI 3.1 document built from the routes themselves: a handler documents itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

import syncd

F = TypeVar("F", bound=Callable[..., Any])
_DOC_ATTR = "__openapi__"


def documented(summary: str, responses: dict[int, str | dict[str, Any]] | None = None, *,
               tags: list[str] | None = None, request_body: dict[str, Any] | None = None,
               parameters: list[dict[str, Any]] | None = None) -> Callable[[F], F]:
    """Attach an OpenAPI operation description to a handler."""
    def wrap(handler: F) -> F:
        operation: dict[str, Any] = {
            "summary": summary,
            # a response is its description, or a whole OpenAPI response object (with schemas)
            "responses": {str(code): {"description": text} if isinstance(text, str) else text
                          for code, text in (responses or {200: "OK"}).items()},
        }
        if tags:
            operation["tags"] = tags
        if request_body:
            operation["requestBody"] = request_body
        if parameters:
            operation["parameters"] = parameters
        setattr(handler, _DOC_ATTR, operation)
        return handler
    return wrap


def build(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document for every documented route of `app`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        operation = getattr(route.handler, _DOC_ATTR, None)
        if operation is None:
            continue
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "syncd", "version": syncd.__version__,
                 "description": "syncd's HTTP interface: health, metrics, status, vendor intake."},
        "paths": dict(sorted(paths.items())),
    }

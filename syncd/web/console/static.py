"""The console's assets (stylesheet, icon), served by syncd from package data: no CDN."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources

from aiohttp import web

from syncd.web import openapi
from syncd.web.console.render import SECURITY_HEADERS

routes = web.RouteTableDef()
ASSETS = {"console.css": "text/css", "favicon.svg": "image/svg+xml"}


@functools.cache
def asset(name: str) -> tuple[bytes, str]:
    """An asset's bytes and its ETag."""
    data = (importlib.resources.files("syncd.web.console") / "static" / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


@routes.get("/ui/static/{name}", name="console.static")
@openapi.documented(
    "Console: a stylesheet or icon (admin listener)",
    {200: "the asset (text/css, image/svg+xml)", 304: "not modified (If-None-Match)",
     404: "no such asset"},
    tags=["console"], content_type="text/css",
    parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}])
async def static(request: web.Request) -> web.StreamResponse:
    """Serve one of the console's assets (the query string only busts caches)."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    data, etag = asset(name)
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": "max-age=3600"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=ASSETS[name], headers=headers)

"""ZKTeco BioTime client (iclock terminals and transactions), from biotime-iclock-terminals-api.md.

Auth: `POST /jwt-api-token-auth/` gives a JWT sent as `Authorization: JWT <t>`, renewed shortly
before its own `exp` (read without verifying: it is the server's token) and once on a 401/403;
or a static `Authorization: Token <t>`, which is never renewed. Lists are
`{count, next, previous, msg, code, data}`: `next` is followed by its query string only (its host
is the server's internal name), with guards against loops and runaway paging. The server is
untrusted: answers are validated and bounded, `code` other than 0 is an error, an HTML page is a
wrong base_url, and a 403 mentioning the licence is `VendorLicenceError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import aiohttp
import yarl
from pydantic import BaseModel, SecretStr

from syncd.errors import VendorAuthError, VendorBadRequest, VendorFault, VendorLicenceError
from syncd.vendors.biotime.models import CommandResult, Page, Terminal, Transaction
from syncd.vendors.http import (
    AuthHeaders,
    Reply,
    Token,
    TokenAuth,
    TokenClient,
    TokenKeeper,
    VendorHttp,
    jwt_expiry,
    parse_model,
    status_error,
    vendor_text,
)
from syncd.vendors.pacing import RetryPolicy

M = TypeVar("M", bound=BaseModel)
VENDOR = "biotime"
TERMINALS = "/iclock/api/terminals/"
TRANSACTIONS = "/iclock/api/transactions/"
COMMANDS = ("reboot", "upload_transaction", "upload_all", "clear_command", "clear_capture",
            "clear_all")
MAX_COMMAND_TERMINALS = 1000


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    return value if isinstance(value, SecretStr) or value is None else SecretStr(value)


def _terminal_body(sn: str, alias: str, ip_address: str, area: int | None,
                   terminal_tz: int | None, heartbeat: int | None) -> dict[str, Any]:
    if not (sn.strip() and alias.strip() and ip_address.strip()):
        raise ValueError("a terminal needs a serial number, an alias and an IP address")
    optional = {"area": area, "terminal_tz": terminal_tz, "heartbeat": heartbeat}
    return {"sn": sn, "alias": alias, "ip_address": ip_address} | {
        k: int(v) for k, v in optional.items() if v is not None}


class BioTimeClient(TokenClient):
    """BioTime's iclock API: terminals, their commands, and transactions."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *,
                 username: str | None = None, password: SecretStr | str | None = None,
                 token: SecretStr | str | None = None, concurrency: int = 4,
                 page_size: int = 100, paging: Literal["page_size", "limit"] = "page_size",
                 rate: float | None = None, max_retries: int = 4,
                 retry: RetryPolicy | None = None, timeout: float = 30.0,
                 max_pages: int = 10_000, max_items: int = 1_000_000,
                 token_margin: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        if token is None and not (username and password):
            raise ValueError("BioTimeClient needs username and password, or a static token")
        if not 1 <= page_size <= 10_000 or paging not in ("page_size", "limit"):
            raise ValueError("page_size must be within 1..10000 and paging 'page_size' or 'limit'")
        self._base = base_url.rstrip("/")
        self._username = username
        self._password = _secret(password)
        self._static = _secret(token)
        self._page_size = page_size
        self._paging = paging
        self._max_pages = max_pages
        self._max_items = max_items
        self._http = VendorHttp(session, VENDOR, rate=rate, concurrency=concurrency,
                                retry=retry or RetryPolicy(max_retries=max_retries),
                                timeout=timeout)
        self._tokens = TokenKeeper(self._login, margin=token_margin, clock=clock)
        self._auth = TokenAuth(self._tokens, lambda token: {"Authorization": f"JWT {token}"})

    # --- documented calls -------------------------------------------------------------------

    async def iter_terminals(self, **filters: str) -> AsyncIterator[Terminal]:
        """Every terminal (GET /iclock/api/terminals/, optional filters such as sn or area)."""
        async for row in self._iter_rows(TERMINALS, filters):
            yield self._parse(Terminal, row, f"GET {TERMINALS}")

    async def get_terminal(self, terminal_id: int) -> Terminal:
        """One terminal by id (GET /iclock/api/terminals/{id}/); `VendorNotFound` if unknown."""
        path = f"{TERMINALS}{int(terminal_id)}/"
        return self._parse(Terminal, await self._request("GET", path), f"GET {path}")

    async def create_terminal(self, sn: str, alias: str, ip_address: str, *,
                              area: int | None = None, terminal_tz: int | None = None,
                              heartbeat: int | None = None) -> Terminal:
        """Register a terminal (POST /iclock/api/terminals/); the server's record of it."""
        body = _terminal_body(sn, alias, ip_address, area, terminal_tz, heartbeat)
        return self._parse(Terminal, await self._request("POST", TERMINALS, body=body),
                           f"POST {TERMINALS}")

    async def update_terminal(self, terminal_id: int, sn: str, alias: str, ip_address: str, *,
                              area: int | None = None, terminal_tz: int | None = None,
                              heartbeat: int | None = None) -> Terminal:
        """Replace a terminal's fields (PUT /iclock/api/terminals/{id}/: sn, alias, ip required)."""
        path = f"{TERMINALS}{int(terminal_id)}/"
        body = _terminal_body(sn, alias, ip_address, area, terminal_tz, heartbeat)
        return self._parse(Terminal, await self._request("PUT", path, body=body), f"PUT {path}")

    async def delete_terminal(self, terminal_id: int) -> None:
        """Delete a terminal (DELETE /iclock/api/terminals/{id}/); `VendorNotFound` if unknown."""
        await self._request("DELETE", f"{TERMINALS}{int(terminal_id)}/")

    async def iter_transactions(self, after_id: int | None = None,
                                **filters: str) -> AsyncIterator[Transaction]:
        """Punches with id > after_id (GET /iclock/api/transactions/), by id where the server can.

        The documented API has no id filter or ordering, so `id__gt` and `ordering=id` are sent
        as hints (Django filters ignore what they do not know) and older ids are skipped here
        too. Ids grow in upload order, so punches uploaded late still appear (FIELD-NOTES).
        """
        hints = {"ordering": "id"} | ({"id__gt": str(after_id)} if after_id is not None else {})
        async for row in self._iter_rows(TRANSACTIONS, hints | filters):
            punch = self._parse(Transaction, row, f"GET {TRANSACTIONS}")
            if after_id is None or punch.id > after_id:
                yield punch

    async def reboot(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Reboot terminals (POST /iclock/api/terminals/reboot/)."""
        return await self._command("reboot", terminal_ids)

    async def upload_transaction(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Ask terminals to upload their punches (POST …/upload_transaction/)."""
        return await self._command("upload_transaction", terminal_ids)

    async def upload_all(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Ask terminals to upload all their data (POST …/upload_all/)."""
        return await self._command("upload_all", terminal_ids)

    async def clear_command(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Drop terminals' pending commands (POST …/clear_command/)."""
        return await self._command("clear_command", terminal_ids)

    async def clear_capture(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Clear terminals' captured photos (POST …/clear_capture/)."""
        return await self._command("clear_capture", terminal_ids)

    async def clear_all(self, terminal_ids: Sequence[int]) -> CommandResult:
        """Clear all data on terminals (POST …/clear_all/)."""
        return await self._command("clear_all", terminal_ids)

    # --- machinery ----------------------------------------------------------------------------

    async def _command(self, action: str, terminal_ids: Sequence[int]) -> CommandResult:
        ids = [int(i) for i in terminal_ids]
        if not ids or len(ids) > MAX_COMMAND_TERMINALS or min(ids) < 1:
            raise ValueError(f"{action}: give 1..{MAX_COMMAND_TERMINALS} positive terminal ids")
        body = await self._request("POST", f"{TERMINALS}{action}/", body={"terminals": ids})
        fields = body if isinstance(body, dict) else {"data": body}
        return self._parse(CommandResult, {**fields, "action": action, "terminals": ids},
                           f"POST {TERMINALS}{action}/")

    async def _iter_rows(self, path: str, filters: dict[str, str]) -> AsyncIterator[Any]:
        """Rows of every page of a list, following `next` by its query string only."""
        size_key = "page_size" if self._paging == "page_size" else "limit"
        query = urlencode({**filters, "page": "1", size_key: str(self._page_size)})
        seen = {query}
        first_len: int | None = None
        most = items = 0
        for number in range(1, self._max_pages + 1):
            page = self._parse(Page, await self._request("GET", path, query=query),
                               f"GET {path} page {number}")
            rows = page.rows
            items += len(rows)
            most = max(most, page.count or 0)
            first_len = len(rows) if first_len is None else first_len
            if items > self._max_items:
                raise VendorFault(VENDOR, f"GET {path}: more than {self._max_items} items")
            for row in rows:
                yield row
            if page.next is None:
                return
            query = yarl.URL(page.next).raw_query_string
            if not query or query in seen:
                raise VendorFault(VENDOR, f"GET {path}: page {number} links to a page already "
                                          "read (pagination loop)")
            seen.add(query)
            if page.count is not None and number >= math.ceil(most / max(first_len, 1)) + 1:
                raise VendorFault(VENDOR, f"GET {path}: {number} pages and still a next link, "
                                          f"for {most} items: pagination does not end")
        raise VendorFault(VENDOR, f"GET {path}: more than {self._max_pages} pages")

    async def _login(self) -> Token:
        """POST /jwt-api-token-auth/ with username and password: a JWT and its `exp`."""
        if self._password is None:
            raise VendorAuthError(VENDOR, "no password configured for the JWT login")
        reply = await self._http.request(
            "POST", self._base + "/jwt-api-token-auth/", idempotent=True,
            json={"username": self._username, "password": self._password.get_secret_value()})
        if reply.status == 400:  # DRF: {"non_field_errors": ["Unable to log in with …"]}
            raise VendorAuthError(VENDOR, f"{reply.where}: login refused: "
                                          f"{self._text(reply.snippet(200))}")
        body = self._decode(reply)
        value = body.get("token") if isinstance(body, dict) else None
        if isinstance(body, dict) and value is None and isinstance(body.get("data"), dict):
            value = body["data"].get("token")
        if not isinstance(value, str) or not 0 < len(value) <= 8192:
            raise VendorFault(VENDOR, f"{reply.where}: login answer carries no token")
        return Token(value, jwt_expiry(value))

    async def _request(self, method: str, path: str, *, query: str | None = None,
                       body: Any = None) -> Any:
        """Send one authenticated call (renewing a refused JWT once); decode the body."""
        url = self._base + path + (f"?{query}" if query else "")

        def send(auth: AuthHeaders) -> Awaitable[Reply]:
            return self._http.request(method, url, json=body, auth=auth,
                                      headers={"Accept": "application/json"})

        if self._static is not None:  # a static token is never renewed
            static = {"Authorization": f"Token {self._static.get_secret_value()}"}

            async def fixed() -> dict[str, str]:
                return static

            return self._decode(await send(fixed))
        return await self._auth.call(send, self._decode)

    def _decode(self, reply: Reply) -> Any:
        """The decoded body of a successful answer; any error (HTTP or `code` ≠ 0) raised."""
        if reply.status == 403 and "licen" in reply.body[:4096].decode("utf-8", "replace").lower():
            raise VendorLicenceError(VENDOR, f"{reply.where}: refused by the BioTime licence gate "
                                             "(the server's licence does not cover this API): "
                                             f"{self._text(reply.snippet())}")
        if reply.looks_like_html():
            raise VendorFault(VENDOR, f"{reply.where}: HTTP {reply.status} answered an HTML page: "
                                      "base_url does not point at a BioTime API")
        body = reply.json()
        if not reply.ok:
            detail = (body.get("detail") or body.get("msg")) if isinstance(body, dict) else None
            raise status_error(VENDOR, reply.status, f"{reply.where}: HTTP {reply.status}: "
                                                     f"{self._text(detail or reply.snippet())}")
        if isinstance(body, dict) and body.get("code") not in (None, 0, "0"):
            message = self._text(body.get("msg") or "no message")
            if "licen" in message.lower():
                raise VendorLicenceError(VENDOR, f"{reply.where}: BioTime licence: {message}")
            raise VendorBadRequest(VENDOR, f"{reply.where}: code {self._text(body['code'], 40)}: "
                                           f"{message}", self._text(body["code"], 40))
        return body

    def _text(self, value: object, limit: int = 300) -> str:
        secret = (self._password, self._static)
        return vendor_text(value, limit, [s.get_secret_value() for s in secret if s is not None]
                           + [self._tokens.current])

    def _parse(self, model: type[M], data: Any, where: str) -> M:
        return parse_model(VENDOR, model, data, where)

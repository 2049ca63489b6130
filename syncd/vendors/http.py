"""Machinery shared by every vendor client: pacing, retries, token caching and error translation.

`VendorHttp.request()` is the one place where aiohttp and asyncio errors become syncd's own:

- transport errors and timeouts -> `VendorTransportError` (a body cut short -> `VendorFault`);
- 5xx (after retries, when retrying was safe) -> `VendorFault`;
- 429 (after retries) -> `VendorRateLimited`, carrying the vendor's Retry-After;
- 3xx -> `VendorFault` (redirects are never followed: they would carry our token headers);
- any other status is handed back as a `Reply`, for the vendor client to read its error body
  (`status_error()` maps what is left); `Reply.json()` turns undecodable bodies into `VendorFault`.

Retries are bounded, use exponential backoff with full jitter, and honour Retry-After (seconds or
HTTP-date, capped by `RetryPolicy.max_retry_after`: a longer wait is not slept but raised). What is
retried: 429 and connection failures before the request was sent, for every call; 5xx, timeouts
and broken connections only for idempotent calls (GET/HEAD/OPTIONS, or `idempotent=True`).
4xx other than 429 is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp
import structlog
import yarl
from pydantic import BaseModel, ValidationError

from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorFault,
    VendorNotFound,
    VendorRateLimited,
    VendorTransportError,
)
from syncd.vendors import usage
from syncd.vendors.auth import AuthHeaders, Token, TokenAuth, TokenKeeper
from syncd.vendors.pacing import Pacer, RetryPolicy, parse_retry_after

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
BeforeSend = Callable[[str, str], Awaitable[None]]  # (method, path): may raise a SyncdError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 16 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")
# Never sent, so safe to repeat even for a POST.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Repeating cannot help.
_PERMANENT = (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError, aiohttp.InvalidURL)


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (Unix time) of a JWT, read with PyJWT without verifying the signature (the
    vendor signs it for itself; we only plan the renewal); None if there is none or it is no JWT."""
    import jwt  # imported on first use: the CLI's start-up needs no PyJWT/cryptography

    if len(token) > 16384:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and 0 < exp < 1e11:
        return float(exp)
    return None


def vendor_text(value: object, limit: int = 300, secrets: Iterable[str | None] = ()) -> str:
    """Untrusted vendor text made safe for a message: no control characters, bounded, no secrets."""
    text = _CONTROL.sub(" ", str(value)).strip()
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text if len(text) <= limit else text[:limit] + "…"


def status_error(vendor: str, status: int, message: str,
                 code: str | int | None = None) -> VendorError:
    """The syncd error for an HTTP status that the vendor client did not map more precisely."""
    if status in (401, 403):
        return VendorAuthError(vendor, message)
    if status == 404:
        return VendorNotFound(vendor, message)
    if status == 429:
        return VendorRateLimited(vendor, message)
    if 400 <= status < 500:
        return VendorBadRequest(vendor, message, code)
    return VendorFault(vendor, message)


def decode_reply(reply: Reply, api: str,
                 error: Callable[[Reply, Any], VendorError | None]) -> Any:
    """The decoded JSON of an answer; an HTML page (wrong base_url), or whatever error `error`
    finds in the status or the body, is raised. Every vendor client decodes through this."""
    if reply.looks_like_html():
        raise VendorFault(reply.vendor, f"{reply.where}: HTTP {reply.status} answered an HTML "
                                        f"page, not the {api} API (check base_url)")
    body = reply.json()
    found = error(reply, body)
    if found is not None:
        raise found
    return body


def parse_model(vendor: str, model: type[M], data: Any, where: str) -> M:
    """Validate an answer into `model`; a mismatch is `VendorFault` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(part) for part in first["loc"]) or "answer"
        raise VendorFault(vendor, f"{where}: unexpected answer ({err.error_count()} invalid "
                                  f"field(s); {loc}: {first['msg']})") from err


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, body read in full (and bounded)."""

    vendor: str
    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def where(self) -> str:
        """`METHOD /path`, for messages."""
        return f"{self.method} {self.path}"

    def looks_like_html(self) -> bool:
        """True when the body is an HTML page rather than an API answer."""
        return self.content_type in ("text/html", "application/xhtml+xml") or \
            self.body.lstrip()[:1] == b"<"

    def snippet(self, limit: int = 160) -> str:
        """The start of the body as safe text, for error messages."""
        return vendor_text(self.body[: limit * 4].decode("utf-8", "replace"), limit)

    def json(self) -> Any:
        """The decoded JSON body (None when empty); undecodable bodies raise `VendorFault`."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as err:
            raise VendorFault(self.vendor, f"{self.where}: HTTP {self.status} body is not valid "
                                           f"JSON (truncated or malformed): {self.snippet(80)!r}"
                              ) from err


class VendorHttp:
    """Sends one vendor's requests: paced, concurrency-limited, retried, errors translated.

    `requests` counts every HTTP request actually sent (retries and token calls included);
    `retries` counts the repeats alone. Each attempt is also counted against the unit of work
    bound in the sending context (`syncd.vendors.usage`), by route template.

    `before_send(method, path)` is awaited right before each attempt goes out (after pacing):
    a quota ledger can refuse the attempt by raising a `SyncdError`, which reaches the caller.
    `final(reply)` marks a 429 or 5xx answer that no retry can help (Codelocks' monthly quota
    refusal: a retry is billed and refused again): it is handed back at once, not retried.
    """

    def __init__(self, session: aiohttp.ClientSession, vendor: str, *,
                 rate: float | None = None, concurrency: int | None = None,
                 retry: RetryPolicy | None = None, timeout: float = 30.0,
                 max_body: int = MAX_BODY_BYTES, rng: random.Random | None = None,
                 before_send: BeforeSend | None = None,
                 final: Callable[[Reply], bool] | None = None) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.session = session
        self.vendor = vendor
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.max_body = max_body
        self.requests = 0
        self.retries = 0
        self._pacer = Pacer(rate) if rate else None
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._before_send = before_send
        self._final = final

    async def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                      json: Any = None, headers: Mapping[str, str] | None = None,
                      idempotent: bool | None = None, auth: AuthHeaders | None = None,
                      route: str | None = None,
                      data: Mapping[str, str] | None = None) -> Reply:
        """Send a request with retries; raise for transport errors, final 5xx and 429.

        `auth` is awaited for each attempt once its turn has come (after pacing and any
        Retry-After wait), so a token that expired while the request queued is never sent.
        `route` names the call for accounting (e.g. "/devices/{deviceUid}"); by default it is
        the path with every segment that looks like an id replaced by "{id}".
        `data` is sent as an application/x-www-form-urlencoded body (instead of `json`).
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        path = yarl.URL(url).path
        route = route or usage.route_template(path)
        attempt = 0
        while True:
            try:
                reply = await self._send(method, url, path, params, json, headers, auth, data,
                                         route)
            except (aiohttp.ClientError, TimeoutError) as err:
                may_retry = (safe or isinstance(err, _NOT_SENT)) and \
                    not isinstance(err, _PERMANENT)
                if may_retry and attempt < self.retry.max_retries:
                    await self._pause(attempt, None, method, path, type(err).__name__)
                    attempt += 1
                    continue
                raise self._transport_error(method, path, err, attempt + 1) from err
            if 300 <= reply.status < 400:  # never followed: they would carry our token headers
                location = vendor_text(reply.headers.get("Location", "?"), 200)
                raise VendorFault(self.vendor, f"{reply.where}: HTTP {reply.status} redirect to "
                                               f"{location}: check base_url")
            if (reply.status != 429 and reply.status < 500) or \
                    (self._final is not None and self._final(reply)):
                return reply
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            too_long = retry_after is not None and retry_after > self.retry.max_retry_after
            if (reply.status == 429 or safe) and not too_long and \
                    attempt < self.retry.max_retries:
                await self._pause(attempt, retry_after, method, path, f"HTTP {reply.status}")
                attempt += 1
                continue
            tries = f"after {attempt + 1} attempt(s)"
            if reply.status == 429:
                raise VendorRateLimited(self.vendor, f"{reply.where}: HTTP 429 rate limited {tries}"
                                        + (f", Retry-After {retry_after:g}s" if retry_after
                                           is not None else ""), retry_after)
            raise VendorFault(self.vendor, f"{reply.where}: HTTP {reply.status} {tries}: "
                                           f"{reply.snippet()!r}")

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield

    async def _send(self, method: str, url: str, path: str, params: Mapping[str, str] | None,
                    body: Any, headers: Mapping[str, str] | None,
                    auth: AuthHeaders | None = None, form: Mapping[str, str] | None = None,
                    route: str = "") -> Reply:
        async with self._slot():
            if self._pacer is not None:
                await self._pacer.wait()
            if auth is not None:
                headers = {**(headers or {}), **await auth()}
            if self._before_send is not None:
                await self._before_send(method, path)
            self.requests += 1
            usage.record(self.vendor, route)
            async with self.session.request(
                method, url, params=params, json=body, headers=headers, allow_redirects=False,
                data=None if form is None else dict(form),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trace_request_ctx=usage.trace_request_ctx(self.vendor, route),
            ) as resp:
                data = await self._read(resp, method, path)
                return Reply(self.vendor, method, path, resp.status, resp.headers, data)

    async def _read(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_body:
            raise VendorFault(self.vendor, f"{method} {path}: body of {resp.content_length} "
                                           f"bytes exceeds the {self.max_body}-byte limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_body:
                raise VendorFault(self.vendor, f"{method} {path}: body exceeds the "
                                               f"{self.max_body}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _pause(self, attempt: int, retry_after: float | None, method: str, path: str,
                     reason: str) -> None:
        delay = retry_after if retry_after is not None else self.retry.backoff(attempt, self._rng)
        self.retries += 1
        log.debug("vendor_retry", vendor=self.vendor, method=method, path=path, reason=reason,
                  attempt=attempt + 1, delay=round(delay, 3))
        await asyncio.sleep(delay)

    def _transport_error(self, method: str, path: str, err: BaseException,
                         tries: int) -> VendorError:
        where = f"{method} {path} (after {tries} attempt(s))"
        if isinstance(err, aiohttp.ClientPayloadError):
            return VendorFault(self.vendor, f"{where}: body truncated or corrupt")
        if isinstance(err, TimeoutError):
            return VendorTransportError(self.vendor, f"{where}: timed out after {self.timeout:g}s")
        return VendorTransportError(self.vendor,
                                    f"{where}: {type(err).__name__}: {vendor_text(err, 200)}")


__all__ = ["AuthHeaders", "Token", "TokenAuth", "TokenKeeper"]  # their home is vendors.auth


class TokenClient:
    """Base of vendor clients that log in for a token: what they expose about their traffic."""

    _http: VendorHttp
    _tokens: TokenKeeper

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries and token calls included."""
        return self._http.requests

    @property
    def token_fetches(self) -> int:
        """Tokens fetched (logins) so far."""
        return self._tokens.fetches

"""NeoLock client (reseller API over Samsung Knox Guard), written from vendor-docs/neolock-api.md.

Auth: HTTP Basic login:password on GET /clients/token gives an access token, sent as
`x-knox-apitoken`. The token is cached, renewed shortly before it expires (its JWT `exp`, else the
answer's `expires_in`, else `token_max_age` if set) and once when a call is refused with 401/403;
the refused call is then repeated once. Replies come in two envelope styles (`result: SUCCESS`
and `code/message/data`) and errors in two body styles (`{code, message, error, path, timestamp}`
and Knox's `{result: FAIL, error: {code, message, reason}}`); `_request()` reads both.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import yarl
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from syncd.errors import VendorAuthError, VendorError, VendorFault, VendorStateInvalid
from syncd.vendors.http import (
    Reply,
    Token,
    TokenAuth,
    TokenClient,
    TokenKeeper,
    VendorHttp,
    decode_reply,
    jwt_expiry,
    parse_model,
    status_error,
    vendor_text,
)
from syncd.vendors.neolock.models import (
    UPLOAD_ROWS,
    AccessToken,
    ActionResult,
    ApiReply,
    Device,
    OfflineLockPin,
    RawUploadPage,
    Upload,
    UploadPage,
    UploadResult,
)
from syncd.vendors.pacing import RetryPolicy

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
VENDOR = "neolock"
_AUTH_NAMES = frozenset({"UNAUTHORIZED", "FORBIDDEN", "AUTHORIZATION_FAIL", "INVALID_TOKEN"})
_FAIL_RESULTS = frozenset({"FAIL", "FAILED", "FAILURE", "ERROR"})
STATE_INVALID_CODE = 4000310


def _http_of(code: Any) -> int | None:
    """The HTTP-like class of a body code: 404 -> 404, Knox 4000310 -> 400, else None."""
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    if 100 <= code < 600:
        return code
    if 1_000_000 <= code < 6_000_000:
        return code // 10_000
    return None


def _payload(body: Any) -> dict[str, Any]:
    """The fields of an answer in either envelope: top level, merged with `data` if it is a dict."""
    if not isinstance(body, dict):
        return {}
    data = body.get("data")
    if isinstance(data, dict):
        return {**{k: v for k, v in body.items() if k != "data"}, **data}
    return body


def _rows(body: Any) -> Any:
    """The list inside a paged answer: `data`, or `data.content|list|items|records`, or the body."""
    return _rows_at(body)[0]


def _rows_at(body: Any) -> tuple[Any, str]:
    """`_rows(body)` and where it sits: keys joined by "/", "" for the body itself."""
    if not isinstance(body, dict):
        return body, ""
    data = body.get("data")
    if isinstance(data, dict):
        for key in ("content", "list", "items", "records"):
            if isinstance(data.get(key), list):
                return data[key], f"data/{key}"
    return (data, "data") if data is not None else ([], "data")  # no "data": no rows


class NeoLockClient(TokenClient):
    """NeoLock's API: token, device uploads, device details, device actions, webhook subscription."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, login: str,
                 password: SecretStr | str, *, rate: float | None = 90.0, max_retries: int = 4,
                 retry: RetryPolicy | None = None, concurrency: int | None = None,
                 timeout: float = 30.0, token_margin: float = 60.0,
                 token_max_age: float | None = None, max_pages: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._base = base_url.rstrip("/")
        self._base_path = yarl.URL(self._base).path.rstrip("/")
        self._login = login
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self._token_max_age = token_max_age
        self._max_pages = max_pages
        self._clock = clock
        self._http = VendorHttp(session, VENDOR, rate=rate, concurrency=concurrency,
                                retry=retry or RetryPolicy(max_retries=max_retries),
                                timeout=timeout)
        self._tokens = TokenKeeper(self._fetch_token, margin=token_margin, clock=clock)
        self._auth = TokenAuth(self._tokens, lambda token: {"x-knox-apitoken": token})

    # --- documented calls -------------------------------------------------------------------

    async def token(self) -> AccessToken:
        """Fetch a fresh access token (GET /clients/token, HTTP Basic)."""
        pair = f"{self._login}:{self._password.get_secret_value()}".encode()
        basic = "Basic " + base64.b64encode(pair).decode("ascii")
        reply = await self._http.request("GET", self._url("/clients/token"),
                                         headers={"Authorization": basic,
                                                  "Accept": "application/json"})
        return self._parse(AccessToken, _payload(self._decode(reply)), reply.where)

    async def upload_devices(self, device_uids: Sequence[str],
                             auto_accept: bool = True) -> UploadResult:
        """Upload devices to the reseller account (POST /clients/devices/uploads)."""
        body = {"deviceList": [{"deviceUid": uid} for uid in device_uids], "autoAccept": auto_accept}
        return await self._call(UploadResult, "POST", "/clients/devices/uploads", body)

    async def get_uploads(self, page_num: int = 0, page_size: int = 100) -> UploadPage:
        """One page of uploaded devices (GET /clients/devices/uploads, pages numbered from 0)."""
        params = {"pageNum": str(page_num), "pageSize": str(page_size)}
        body = await self._request("GET", "/clients/devices/uploads", params=params)
        rows = _rows(body)
        if not isinstance(rows, list) or len(rows) > page_size:
            raise VendorFault(VENDOR, f"GET /clients/devices/uploads page {page_num}: expected a "
                                      f"list of at most {page_size} uploads")
        items = [self._parse(Upload, row, "GET /clients/devices/uploads") for row in rows]
        return UploadPage(page_num=page_num, page_size=page_size, items=items)

    async def get_raw_uploads(self, page_num: int = 0, page_size: int = 1000) -> RawUploadPage:
        """One page of uploads validated at once and kept as JSON text (for bulk syncs)."""
        where = "GET /clients/devices/uploads"
        params = {"pageNum": str(page_num), "pageSize": str(page_size)}
        body, text = await self._request("GET", "/clients/devices/uploads", params=params,
                                         keep_text=True)
        rows, rows_at = _rows_at(body)
        if not isinstance(rows, list) or len(rows) > page_size:
            raise VendorFault(VENDOR, f"{where} page {page_num}: expected a list of at most "
                                      f"{page_size} uploads")
        self._parse_with(UPLOAD_ROWS, rows, where)
        return RawUploadPage(page_num, page_size, len(rows), text, rows_at)

    async def iter_upload_pages(self, page_size: int = 100) -> AsyncIterator[UploadPage]:
        """Every page of uploaded devices, in order, until a page that is not full."""
        previous: list[str] | None = None
        for page_num in range(self._max_pages):
            page = await self.get_uploads(page_num, page_size)
            uids = [item.device_uid for item in page.items]
            if uids and uids == previous:
                raise VendorFault(VENDOR, f"uploads page {page_num} repeats the previous page: "
                                          "the server ignores pageNum")
            yield page
            if page.is_last:
                return
            previous = uids
        raise VendorFault(VENDOR, f"uploads did not end within {self._max_pages} pages")

    async def iter_uploads(self, page_size: int = 100) -> AsyncIterator[Upload]:
        """Every uploaded device, page after page."""
        async for page in self.iter_upload_pages(page_size):
            for item in page.items:
                yield item

    async def get_device(self, device_uid: str) -> Device:
        """A device's details (GET /clients/devices/{deviceUid}); `VendorNotFound` if unknown."""
        path = f"/clients/devices/{quote(device_uid, safe='')}"
        body = await self._request("GET", path, route="/clients/devices/{deviceUid}")
        data = body.get("device") if isinstance(body, dict) else None
        if not isinstance(data, dict):  # the code/message/data style: the device is `data`
            inner = body.get("data") if isinstance(body, dict) else None
            data = (inner.get("device", inner) if isinstance(inner, dict) else inner) or body
        return self._parse(Device, data, f"GET {path}")

    async def approve(self, device_uid: str) -> ActionResult:
        """Approve an uploaded device (POST /clients/devices/approve)."""
        return await self._action(ActionResult, "approve", {"deviceUid": device_uid})

    async def lock(self, device_uid: str, message: str, tel: str) -> ActionResult:
        """Lock a device, showing `message` and the phone number `tel` (POST …/lock)."""
        body = {"deviceUid": device_uid, "message": message, "tel": tel}
        return await self._action(ActionResult, "lock", body)

    async def unlock(self, device_uid: str, message: str = "", tel: str = "") -> ActionResult:
        """Unlock a device (POST /clients/devices/unlock)."""
        body = {"deviceUid": device_uid, "message": message, "tel": tel}
        return await self._action(ActionResult, "unlock", body)

    async def complete(self, device_uid: str) -> ActionResult:
        """Complete a device: release it from Knox Guard for good (POST …/complete)."""
        return await self._action(ActionResult, "complete", {"deviceUid": device_uid})

    async def delete(self, device_uid: str) -> ActionResult:
        """Delete a device from the account (POST /clients/devices/delete)."""
        return await self._action(ActionResult, "delete", {"deviceUid": device_uid})

    async def send_message(self, device_uid: str, message: str) -> ActionResult:
        """Show a message on a device (POST /clients/devices/sendMessage)."""
        body = {"deviceUid": device_uid, "message": message}
        return await self._action(ActionResult, "sendMessage", body)

    async def offline_lock_pin(self, device_uid: str, challenge: str) -> OfflineLockPin:
        """Get the offline lock PIN for a device's challenge (POST …/offlineDeviceLockPin)."""
        body = {"deviceUid": device_uid, "challenge": challenge}
        return await self._action(OfflineLockPin, "offlineDeviceLockPin", body)

    async def register_subscription(self, url: str) -> ApiReply:
        """Subscribe `url` to pushed events (POST /subscriptions/clients; one per client)."""
        return await self._call(ApiReply, "POST", "/subscriptions/clients", {"url": url})

    async def delete_subscription(self) -> ApiReply:
        """Delete the client's subscription (DELETE /subscriptions/clients; there is no id)."""
        return await self._call(ApiReply, "DELETE", "/subscriptions/clients", idempotent=True)

    # --- machinery ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._base + path

    async def _action(self, model: type[M], name: str, body: dict[str, Any]) -> M:
        return await self._call(model, "POST", f"/clients/devices/{name}", body)

    async def _call(self, model: type[M], method: str, path: str, body: Any = None, *,
                    idempotent: bool | None = None) -> M:
        answer = await self._request(method, path, body=body, idempotent=idempotent)
        data = answer if model is ApiReply else _payload(answer)
        return self._parse(model, data if data is not None else {}, f"{method} {path}")

    async def _fetch_token(self) -> Token:
        answer = await self.token()
        value = answer.access_token.get_secret_value()
        expires_at = jwt_expiry(value)
        if expires_at is None and answer.expires_in is not None:
            expires_at = self._clock() + answer.expires_in
        if expires_at is None and self._token_max_age is not None:
            expires_at = self._clock() + self._token_max_age
        return Token(value, expires_at)

    async def _request(self, method: str, path: str, *, body: Any = None,
                       params: dict[str, str] | None = None,
                       idempotent: bool | None = None, route: str | None = None,
                       keep_text: bool = False) -> Any:
        """Send one authenticated call (renewing a refused token once); decode the body (with
        `keep_text`, return it together with the body as text, for bulk pages kept as JSON)."""

        def accept(reply: Reply) -> Any:
            decoded = self._decode(reply)
            return (decoded, reply.body.decode("utf-8", "replace")) if keep_text else decoded

        return await self._auth.call(
            lambda auth: self._http.request(
                method, self._url(path), json=body, params=params, idempotent=idempotent,
                headers={"Accept": "application/json"}, auth=auth,
                route=self._base_path + route if route else None),
            accept)

    def _decode(self, reply: Reply) -> Any:
        """The decoded body of a successful answer; any error (HTTP or in the body) raised."""
        return decode_reply(reply, "NeoLock", self._error)

    def _error(self, reply: Reply, body: Any) -> VendorError | None:
        """The syncd error described by an answer, or None if it is a success."""
        if not isinstance(body, dict):
            if reply.ok:
                return None
            return status_error(VENDOR, reply.status, f"{reply.where}: HTTP {reply.status}: "
                                                      f"{self._text(reply.snippet())!r}")
        inner = body.get("error")
        code: Any = body.get("code")
        message: Any = body.get("message")
        reason: Any = None
        if isinstance(inner, dict):  # Knox style: {result: FAIL, error: {code, message, reason}}
            code, message, reason = inner.get("code", code), inner.get("message"), \
                inner.get("reason")
        else:
            reason = inner  # {code, message, error: "NOT_FOUND", path, timestamp}
            result = str(body.get("result") or "").upper()
            kind = _http_of(code)
            if reply.ok and not inner and result not in _FAIL_RESULTS and \
                    (code is None or code == 0 or kind is None or kind < 400):
                return None
        english = str(message or "").split("\n", 1)[0]  # messages are English\nRussian
        label = f"{reply.where}: " + " ".join(
            self._text(part, 200) for part in (code, english, f"({reason})" if reason else None)
            if part not in (None, ""))
        names = {str(message or "").upper(), str(reason or "").upper()}
        if str(code) == str(STATE_INVALID_CODE) or "DEVICE_STATE_INVALID" in names:
            return VendorStateInvalid(VENDOR, label, code, self._text(reason or english, 300))
        status, kind = reply.status, _http_of(code)
        if status < 400 or (status == 400 and kind is not None and kind > 400):
            status = kind if kind is not None and kind >= 400 else 400  # the body is more precise
        if status in (401, 403) or names & _AUTH_NAMES:
            return VendorAuthError(VENDOR, label)
        if "NOT_FOUND" in names or "DEVICE_NOT_FOUND" in names:
            status = 404
        return status_error(VENDOR, status, label, code)

    def _text(self, value: object, limit: int = 300) -> str:
        secrets = (self._password.get_secret_value(), self._tokens.current)
        return vendor_text(value, limit, secrets)

    def _parse(self, model: type[M], data: Any, where: str) -> M:
        return parse_model(VENDOR, model, data, where)

    def _parse_with(self, adapter: TypeAdapter[T], data: Any, where: str) -> T:
        """Validate `data` with `adapter` at once; a mismatch is `VendorFault` naming the field."""
        try:
            return adapter.validate_python(data)
        except ValidationError as err:
            first = err.errors(include_input=False, include_url=False)[0]
            loc = ".".join(str(part) for part in first["loc"]) or "answer"
            raise VendorFault(VENDOR, f"{where}: unexpected answer ({err.error_count()} invalid "
                                      f"field(s); {loc}: {first['msg']})") from err

"""Samsung Knox Guard direct-tenant client, written from vendor-docs/knox-guard-api.md + FIELD-NOTES.

Auth is either a static `x-knox-apitoken`, or the Knox Cloud signed-token flow (see auth.py): the
token is a signed JWT built from an access token exchanged at `token_url`, cached by a
`TokenKeeper`, renewed shortly before its validity runs out and once when a call is refused with
401 (`_request()`, the one place renewal happens). Errors are `{result: "FAIL", error: {code,
message, reason}}`, mapped once in `_error()`: 4010000 auth, 4000000 bad parameter, 4000310 state
invalid, 404/4040000 not found.

Each device action also has an asynchronous variant (`asynchronous=True`: POST /devices/{action}Async),
sent with a transaction id syncd makes (`x-knox-transactionId`, as the doc says the caller
provides it), whose per-device outcome is read with POST /transaction (`wait_transaction`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, SecretStr

from syncd.errors import (
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorFault,
    VendorNotFound,
    VendorStateInvalid,
)
from syncd.vendors.http import (
    AuthHeaders,
    Reply,
    Token,
    TokenAuth,
    TokenClient,
    TokenKeeper,
    VendorHttp,
    decode_reply,
    parse_model,
    status_error,
    vendor_text,
)
from syncd.vendors.knoxguard.auth import KnoxSigner
from syncd.vendors.knoxguard.models import (
    MAX_MESSAGE,
    MAX_UPLOAD,
    AccessToken,
    ActionResult,
    Authorization,
    Blink,
    Device,
    DevicePage,
    KnoxRequestInvalid,
    TransactionResult,
    UploadDetail,
    UploadPage,
    UploadResult,
)
from syncd.vendors.pacing import RetryPolicy

M = TypeVar("M", bound=BaseModel)
VENDOR = "knoxguard"
TOKEN_HEADER = "x-knox-apitoken"  # noqa: S105 - a header name, not a secret
TRANSACTION_HEADER = "x-knox-transactionId"
AUTH_FAIL, BAD_PARAM, STATE_INVALID, NOT_FOUND = 4010000, 4000000, 4000310, 4040000
ASYNC_ACTIONS = frozenset({"approve", "lock", "unlock", "blink", "complete", "sendMessage",
                           "delete"})


def _code(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class TransactionPending(VendorFault):
    """An async request's results were not all in when the wait ran out; `last` is what was."""

    def __init__(self, transaction_id: str, waited: float, last: TransactionResult) -> None:
        super().__init__(VENDOR, f"transaction {vendor_text(transaction_id, 80)} not done after "
                                 f"{waited:g}s ({len(last.results)}/{last.count} results)")
        self.transaction_id = transaction_id
        self.last = last


class KnoxGuardClient(TokenClient):
    """Knox Guard's API: authorization, uploads, device list, device actions, async transactions."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *,
                 api_token: SecretStr | str | None = None, keys: SecretStr | str | None = None,
                 client_identifier: SecretStr | str | None = None, token_url: str | None = None,
                 token_validity_minutes: int = 30, rate: float | None = 90.0,
                 retry: RetryPolicy | None = None, timeout: float = 30.0,
                 token_margin: float = 60.0, clock: Callable[[], float] = time.time,
                 max_pages: int = 100_000, transaction_poll: float = 0.5,
                 transaction_timeout: float = 60.0) -> None:
        if (api_token is None) == (keys is None or client_identifier is None or token_url is None):
            raise ValueError("give either api_token, or keys, client_identifier and token_url")
        self._base = base_url.rstrip("/")
        self._static = SecretStr(api_token) if isinstance(api_token, str) else api_token
        self._signer = None if keys is None else KnoxSigner(
            keys.get_secret_value() if isinstance(keys, SecretStr) else keys)
        ident = client_identifier
        self._client_id = ident.get_secret_value() if isinstance(ident, SecretStr) else ident
        self._token_url = token_url
        self._validity = token_validity_minutes
        self._clock = clock
        self._max_pages = max_pages
        self._poll = transaction_poll
        self._poll_timeout = transaction_timeout
        self._http = VendorHttp(session, VENDOR, rate=rate, retry=retry or RetryPolicy(),
                                timeout=timeout)
        self._tokens = TokenKeeper(self._fetch_token, margin=token_margin, clock=clock)
        self._token_auth = TokenAuth(self._tokens, lambda token: {TOKEN_HEADER: token})
        self._fixed = [v for v in (self._static.get_secret_value() if self._static else None,
                                   self._client_id) if v]
        self._secrets: list[str] = list(self._fixed)

    # --- documented calls ---------------------------------------------------------------------

    async def authorization(self) -> Authorization:
        """Check the token and describe the account (GET /authorization)."""
        return await self._call(Authorization, "GET", "/authorization")

    async def upload_devices(self, device_uids: Sequence[str], *, auto_accept: bool = False,
                             auto_lock: bool = False, apply_sim_control: bool = False,
                             enable_block_factory_reset: bool = False) -> UploadResult:
        """Upload devices to the tenant (POST /devices/uploads; at most 10,000 at a time)."""
        if len(device_uids) > MAX_UPLOAD:
            raise KnoxRequestInvalid(f"upload: at most {MAX_UPLOAD} devices per upload "
                                     f"(got {len(device_uids)})")
        body = {"deviceList": [{"deviceUid": uid} for uid in device_uids],
                "autoAccept": auto_accept, "autoLock": auto_lock,
                "applySimControl": apply_sim_control,
                "enableBlockFactoryReset": enable_block_factory_reset}
        return await self._call(UploadResult, "POST", "/devices/uploads", body)

    async def get_uploads(self, page_num: int = 0, page_size: int = 1000) -> UploadPage:
        """One page of upload batches with totalCount (GET /devices/uploads)."""
        body = await self._request("GET", "/devices/uploads", params=self._paging(
            page_num, page_size))
        data = {**(body if isinstance(body, dict) else {}), "page_num": page_num,
                "page_size": page_size}
        page = self._parse(UploadPage, data, "GET /devices/uploads")
        self._check_page(len(page.items), page_size, "GET /devices/uploads")
        return page

    async def get_upload(self, upload_id: str, page_num: int = 0,
                         page_size: int = 1000) -> UploadDetail:
        """One page of the devices of one upload (GET /devices/uploads/{uploadId})."""
        path = f"/devices/uploads/{quote(upload_id, safe='')}"
        body = await self._request("GET", path, params=self._paging(page_num, page_size))
        data = {**(body if isinstance(body, dict) else {}), "upload_id": upload_id,
                "page_num": page_num, "page_size": page_size}
        detail = self._parse(UploadDetail, data, f"GET {path}")
        self._check_page(len(detail.devices), page_size, f"GET {path}")
        return detail

    async def list_devices(self, page_num: int = 0, page_size: int = 100,
                           search: str | None = None) -> DevicePage:
        """One page of the tenant's devices (POST /devices/list, pages from 0)."""
        request: dict[str, Any] = {"pageNum": page_num, "pageSize": page_size}
        if search is not None:
            request["search"] = search
        body = await self._request("POST", "/devices/list", body=request, idempotent=True)
        rows = None
        if isinstance(body, dict):
            rows = next((body[k] for k in ("deviceList", "devices", "data")
                         if isinstance(body.get(k), list)), None)
        if rows is None:
            raise VendorFault(VENDOR, "POST /devices/list: the answer has no device list")
        self._check_page(len(rows), page_size, "POST /devices/list")
        items = [self._parse(Device, row, "POST /devices/list") for row in rows]
        total = _code(body.get("totalCount")) if isinstance(body, dict) else None
        return DevicePage(page_num=page_num, page_size=page_size, total_count=total, items=items)

    async def get_device(self, device_uid: str) -> Device:
        """The device with exactly this deviceUid (a devices/list search); VendorNotFound if none."""
        page = await self.list_devices(0, 100, search=device_uid)
        for device in page.items:
            if device.device_uid == device_uid:
                return device
        raise VendorNotFound(VENDOR, f"device {vendor_text(device_uid, 64)} is not in the tenant")

    async def approve(self, device_uid: str, approve_id: str | None = None,
                      approve_comment: str | None = None, *,
                      asynchronous: bool = False) -> ActionResult:
        """Accept a Pending device (POST /devices/approve)."""
        if approve_id is not None and len(approve_id) > 50:
            raise KnoxRequestInvalid("approve: approveId must be at most 50 characters")
        if approve_comment is not None and len(approve_comment) > 1000:
            raise KnoxRequestInvalid("approve: approveComment must be at most 1000 characters")
        body = {"deviceUid": device_uid, "approveId": approve_id, "approveComment": approve_comment}
        return await self._action("approve", {k: v for k, v in body.items() if v is not None},
                                  asynchronous)

    async def blink(self, blink: Blink, *, asynchronous: bool = False) -> ActionResult:
        """Set the blinking payment reminder (POST /devices/blink); build `blink` with Blink.checked."""
        return await self._action("blink", blink.body(), asynchronous)

    async def lock(self, device_uid: str, message: str | None = None,
                   tel: str | None = None, email: str | None = None, *,
                   asynchronous: bool = False) -> ActionResult:
        """Lock a device, optionally showing a message and contact (POST /devices/lock)."""
        return await self._action("lock", self._device_body(device_uid, message, tel, email),
                                  asynchronous)

    async def unlock(self, device_uid: str, *, asynchronous: bool = False) -> ActionResult:
        """Unlock a locked device (POST /devices/unlock)."""
        return await self._action("unlock", {"deviceUid": device_uid}, asynchronous)

    async def complete(self, device_uid: str, *, asynchronous: bool = False) -> ActionResult:
        """Release a device from Knox Guard for good (POST /devices/complete)."""
        return await self._action("complete", {"deviceUid": device_uid}, asynchronous)

    async def send_message(self, device_uid: str, message: str, tel: str | None = None,
                           email: str | None = None, *,
                           asynchronous: bool = False) -> ActionResult:
        """Show a message on a device (POST /devices/sendMessage)."""
        if not message.strip():
            raise KnoxRequestInvalid("message: the message is required")
        return await self._action("sendMessage", self._device_body(device_uid, message, tel, email),
                                  asynchronous)

    async def delete(self, device_uid: str, *, asynchronous: bool = False) -> ActionResult:
        """Delete a device from the tenant (POST /devices/delete)."""
        return await self._action("delete", {"deviceUid": device_uid}, asynchronous)

    async def start_async(self, action: str, body: dict[str, Any]) -> str:
        """Send the …Async variant of an action; return its transaction id."""
        if action not in ASYNC_ACTIONS:
            raise KnoxRequestInvalid(f"no asynchronous variant of {action!r}")
        answer = await self._action(action, body, asynchronous=True)
        assert answer.transaction_id is not None  # _action made sure
        return answer.transaction_id

    async def transaction(self, transaction_id: str) -> TransactionResult:
        """The results so far of an async request (POST /transaction)."""
        return await self._call(TransactionResult, "POST", "/transaction",
                                {"transactionId": transaction_id}, idempotent=True)

    async def wait_transaction(self, transaction_id: str,
                               timeout: float | None = None) -> TransactionResult:
        """Poll /transaction until every device has a result (`TransactionPending` after
        `timeout` seconds, else the client's transaction_timeout)."""
        limit = self._poll_timeout if timeout is None else timeout
        deadline = self._clock() + limit
        while True:
            result = await self.transaction(transaction_id)
            if result.done:
                return result
            if self._clock() >= deadline:
                raise TransactionPending(transaction_id, limit, result)
            await asyncio.sleep(self._poll)

    # --- machinery ----------------------------------------------------------------------------

    @staticmethod
    def _paging(page_num: int, page_size: int) -> dict[str, str]:
        if page_num < 0 or not 1 <= page_size <= 1000:
            raise KnoxRequestInvalid("paging: pageNum must be >= 0 and pageSize 1..1000")
        return {"pageNum": str(page_num), "pageSize": str(page_size)}

    @staticmethod
    def _check_page(count: int, page_size: int, where: str) -> None:
        if count > page_size:
            raise VendorFault(VENDOR, f"{where}: {count} items in a page of {page_size}")

    @staticmethod
    def _device_body(device_uid: str, message: str | None, tel: str | None,
                     email: str | None) -> dict[str, Any]:
        if message is not None and len(message) > MAX_MESSAGE:
            raise KnoxRequestInvalid(f"message must be at most {MAX_MESSAGE} characters "
                                     f"(got {len(message)})")
        body = {"deviceUid": device_uid, "message": message, "tel": tel, "email": email}
        return {k: v for k, v in body.items() if v is not None}

    async def _action(self, name: str, body: dict[str, Any],
                      asynchronous: bool = False) -> ActionResult:
        if not asynchronous:
            return await self._call(ActionResult, "POST", f"/devices/{name}", body)
        # The doc has the caller name the transaction; an answer naming another one wins.
        ours = uuid.uuid4().hex
        path = f"/devices/{name}Async"
        answer = await self._call(ActionResult, "POST", path, body,
                                  headers={TRANSACTION_HEADER: ours})
        return answer if answer.transaction_id else answer.model_copy(
            update={"transaction_id": ours})

    async def _call(self, model: type[M], method: str, path: str, body: Any = None, *,
                    idempotent: bool | None = None, headers: dict[str, str] | None = None) -> M:
        answer = await self._request(method, path, body=body, idempotent=idempotent,
                                     headers=headers)
        return self._parse(model, answer if answer is not None else {}, f"{method} {path}")

    async def _fetch_token(self) -> Token:
        """The static token, or a fresh signed API token from a new access-token exchange."""
        if self._static is not None:
            return Token(self._static.get_secret_value())
        assert self._signer is not None and self._client_id is not None and self._token_url
        lifetime = self._validity * 60.0
        assertion = self._signer.client_identifier_jwt(self._client_id, self._clock(), lifetime)
        reply = await self._http.request("POST", self._token_url, json={
            "clientIdentifierJwt": assertion,
            "base64EncodedStringPublicKey": self._signer.public_key,
            "validityForAccessTokenInMinutes": self._validity,
        }, headers={"Accept": "application/json"})
        answer = self._parse(AccessToken, self._decode(reply), reply.where)
        access = answer.access_token.get_secret_value()
        now = self._clock()
        value = self._signer.api_token(access, now, now + lifetime)
        self._secrets = [*self._fixed, access, value]
        return Token(value, now + lifetime)

    async def _request(self, method: str, path: str, *, body: Any = None,
                       params: dict[str, str] | None = None, idempotent: bool | None = None,
                       headers: dict[str, str] | None = None) -> Any:
        """Send one authenticated call; renew a refused token once (a static token never is);
        decode the body."""

        def send(auth: AuthHeaders) -> Awaitable[Reply]:
            return self._http.request(method, self._base + path, json=body, params=params,
                                      idempotent=idempotent, auth=auth,
                                      headers={"Accept": "application/json", **(headers or {})})

        if self._static is not None:  # a static token is sent as it is, never renewed
            static = {TOKEN_HEADER: self._static.get_secret_value()}

            async def fixed() -> dict[str, str]:
                return static

            return self._decode(await send(fixed))
        return await self._token_auth.call(send, self._decode)

    def _decode(self, reply: Reply) -> Any:
        """The decoded body of a successful answer; any error (HTTP or in the body) raised."""
        return decode_reply(reply, "Knox Guard", self._error)

    def _error(self, reply: Reply, body: Any) -> VendorError | None:
        """The syncd error an answer describes, or None if it is a success."""
        inner = body.get("error") if isinstance(body, dict) else None
        failed = isinstance(body, dict) and str(body.get("result") or "").upper() == "FAIL"
        if reply.ok and not failed and not isinstance(inner, dict):
            return None
        code = message = reason = None
        if isinstance(inner, dict):
            code, message, reason = _code(inner.get("code")), inner.get("message"), \
                inner.get("reason")
        label = f"{reply.where}: HTTP {reply.status}" + "".join(
            f" {self._text(part, 200)}" for part in (code, message) if part not in (None, "")) + \
            (f" ({self._text(reason, 300)})" if reason else "")
        if not isinstance(inner, dict) and not reply.ok:
            label += f": {self._text(reply.snippet())!r}"
        if code == STATE_INVALID:
            return VendorStateInvalid(VENDOR, label, code, self._text(reason or message, 300))
        if code == AUTH_FAIL or reply.status in (401, 403):
            return VendorAuthError(VENDOR, label)
        if code == NOT_FOUND or reply.status == 404:
            return VendorNotFound(VENDOR, label)
        if code == BAD_PARAM:
            return VendorBadRequest(VENDOR, label, code)
        return status_error(VENDOR, reply.status if reply.status >= 400 else 400, label, code)

    def _text(self, value: object, limit: int = 300) -> str:
        return vendor_text(value, limit, self._secrets)

    def _parse(self, model: type[M], data: Any, where: str) -> M:
        return parse_model(VENDOR, model, data, where)

"""Codelocks Connect client (KitLock NetCodes, K3Connect locks), from vendor-docs/codelocks-connect-api.md.

Auth is the `x-api-key` header. Utility calls live under `<base_url>/u/1`, NetCode calls under
`<base_url>/n/1`; the vendor bills each category against its own monthly quota, retries included,
so `before_call(category)` is awaited before every attempt (the quota ledger hooks in there and
may raise to refuse the call). A 429 "Limit Exceeded" (the month's quota used up at the vendor)
is never retried: it raises `QuotaRefusedByVendor` at once; a throttling 429 is retried as any
vendor's is (FIELD-NOTES). Errors are judged by the body as well as the status: the vendor
answers some with HTTP 200 and `{"error", "message"}`, `{"status": "error"}` or
`{"netcode": "ERROR", "status": "ok"}` (FIELD-NOTES).

The API key and the K3Connect access keys are secrets: they never appear in an error message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import yarl
from pydantic import BaseModel, SecretStr

from syncd.errors import (
    QuotaExhausted,
    VendorAuthError,
    VendorBadRequest,
    VendorError,
    VendorFault,
    VendorNotFound,
)
from syncd.vendors.codelocks.models import (
    INIT_MODELS,
    LOCK_MODELS,
    NETCODE,
    UTILITY,
    AccountInfo,
    AuditEntry,
    ClientPage,
    ClientResult,
    Duration,
    DurationInfo,
    InitSequence,
    K3Lock,
    Mode,
    NetCode,
)
from syncd.vendors.http import Reply, VendorHttp, parse_model, status_error, vendor_text
from syncd.vendors.pacing import RetryPolicy

M = TypeVar("M", bound=BaseModel)
VENDOR = "codelocks"
BeforeCall = Callable[[str], Awaitable[None]]
_AUTH_ERRORS = frozenset({"UNAUTHORIZED", "FORBIDDEN", "INVALIDACCESSKEY", "ACCESSDENIED"})


class QuotaRefusedByVendor(QuotaExhausted):
    """Codelocks refused a call with 429 "Limit Exceeded": by its count, the month's quota is used.

    `category` is the quota ("netcode" or "utility") that the vendor says is used up.
    """

    def __init__(self, vendor: str, message: str, category: str) -> None:
        super().__init__(vendor, message)
        self.category = category


def quota_refusal(reply: Reply) -> bool:
    """True for the API gateway's usage-plan refusal: 429 "Limit Exceeded" (the month's quota is
    used up), as opposed to its throttling 429 "Too Many Requests", which a wait cures."""
    return reply.status == 429 and b"limit exceeded" in reply.body[:1000].lower()


def _secret(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class CodelocksClient:
    """Every documented Codelocks Connect call, typed."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: SecretStr | str, *,
                 rate: float | None = 5.0, retry: RetryPolicy | None = None,
                 timeout: float = 30.0, before_call: BeforeCall | None = None) -> None:
        base = base_url.rstrip("/")
        self._utility = base + "/u/1"
        self._netcode = base + "/n/1"
        self._netcode_path = yarl.URL(self._netcode).path
        self._api_key = _secret(api_key)
        self._before_call = before_call
        self._secrets: set[str] = {self._api_key}
        self._http = VendorHttp(session, VENDOR, rate=rate, retry=retry or RetryPolicy(max_retries=2),
                                timeout=timeout, before_send=self._before_send,
                                final=quota_refusal)

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self._http.requests

    def category_of(self, path: str) -> str:
        """The quota category ("netcode" or "utility") of a request path."""
        return NETCODE if path.startswith(self._netcode_path + "/") else UTILITY

    async def _before_send(self, method: str, path: str) -> None:
        if self._before_call is not None:
            await self._before_call(self.category_of(path))

    # --- NetCode ------------------------------------------------------------------------------

    async def kitlock_netcode(self, timecode: str, start: str, duration_id: int, lock_model: str,
                              identifier: str) -> NetCode:
        """A NetCode for a KitLock (GET /n/1/netcode/{timecode}); start "yyyy-MM-dd hh:mm"."""
        params = {"start": start, "duration": str(duration_id), "lockmodel": lock_model,
                  "identifier": identifier}
        return await self._get(NetCode, NETCODE, f"/netcode/{quote(timecode, safe='')}", params)

    async def k3_netcode(self, lock_id: str, start: str, duration_id: int,
                         access_key: SecretStr | str) -> NetCode:
        """A NetCode for a K3Connect lock (GET /n/1/netcode/{lock id}, identifier = access key)."""
        params = {"start": start, "duration": str(duration_id), "lockmodel": "K3CONNECT",
                  "identifier": self._remember(access_key)}
        return await self._get(NetCode, NETCODE, f"/netcode/{quote(lock_id, safe='')}", params)

    # --- Utility: KitLock ---------------------------------------------------------------------

    async def init(self, lock_model: str | None = None, master_code: SecretStr | str | None = None,
                   timezone: str | None = None, random_id: bool | None = None) -> InitSequence:
        """A KitLock initialisation sequence (GET /u/1/init)."""
        params: dict[str, str] = {}
        if lock_model is not None:
            params["lockmodel"] = lock_model
        if master_code is not None:
            params["mastercode"] = self._remember(master_code)
        if timezone is not None:
            params["timezone"] = timezone
        if random_id is not None:
            params["randomid"] = "true" if random_id else "false"
        return await self._get(InitSequence, UTILITY, "/init", params)

    async def durations(self, lock_model: str | None = None) -> list[Duration]:
        """The NetCode duration ids of a lock model (GET /u/1/durations?operation=durations)."""
        params = {"operation": "durations", **({"lockmodel": lock_model} if lock_model else {})}
        return await self._get_list(Duration, "/durations", params)

    async def modes(self, lock_model: str | None = None) -> list[Mode]:
        """The NetCode modes of a lock model (GET /u/1/durations?operation=modes)."""
        params = {"operation": "modes", **({"lockmodel": lock_model} if lock_model else {})}
        return await self._get_list(Mode, "/durations", params)

    async def duration(self, duration_id: int, lock_model: str | None = None) -> DurationInfo:
        """One duration id's rules (GET /u/1/duration/{id})."""
        params = {"lockmodel": lock_model} if lock_model else {}
        return await self._get(DurationInfo, UTILITY, f"/duration/{duration_id}", params)

    # --- Utility: K3Connect -------------------------------------------------------------------

    async def locks(self, access_key: SecretStr | str) -> list[K3Lock]:
        """Every lock of the access key's account (GET /u/1/k3connect)."""
        return await self._get_list(K3Lock, "/k3connect", {"accesskey": self._remember(access_key)})

    async def lock(self, access_key: SecretStr | str, lock_id: str) -> K3Lock:
        """One lock (GET /u/1/k3connect/{id}); `VendorNotFound` if not on the account."""
        return await self._get(K3Lock, UTILITY, f"/k3connect/{quote(lock_id, safe='')}",
                               {"accesskey": self._remember(access_key)})

    async def account(self, access_key: SecretStr | str) -> list[AccountInfo]:
        """The K3Connect account of an access key (GET /u/1/k3connect/account)."""
        return await self._get_list(AccountInfo, "/k3connect/account",
                                    {"accesskey": self._remember(access_key)})

    async def active_periods_help(self) -> str:
        """Sample active-periods JSON (GET /u/1/k3connect/help/spcconfig)."""
        body = await self._request("GET", UTILITY, "/k3connect/help/spcconfig")
        value = body.get("activeperiods") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise VendorFault(VENDOR, "GET /k3connect/help/spcconfig: no activeperiods string")
        return value

    async def clients(self, access_key: SecretStr | str, lock_id: str, page: int = 1,
                      per_page: int = 50) -> ClientPage:
        """A page of a lock's smartphone clients (GET /u/1/k3connect/{id}/clients)."""
        params = {"accesskey": self._remember(access_key), "page": str(page),
                  "perpage": str(per_page)}
        return await self._get(ClientPage, UTILITY,
                               f"/k3connect/{quote(lock_id, safe='')}/clients", params)

    async def audit(self, access_key: SecretStr | str, lock_id: str, page: int = 1,
                    per_page: int = 100, descending: bool = True) -> list[AuditEntry]:
        """A page of a lock's audit trail (GET /u/1/k3connect/{id}/audit)."""
        params = {"accesskey": self._remember(access_key), "page": str(page),
                  "perpage": str(per_page),
                  "pageorder": "descending" if descending else "ascending"}
        return await self._get_list(AuditEntry, f"/k3connect/{quote(lock_id, safe='')}/audit",
                                    params)

    async def add_client(self, access_key: SecretStr | str, lock_id: str, email: str,
                         active_periods: Mapping[str, Any], access_type: str = "STANDARD",
                         message: str = "Access granted") -> ClientResult:
        """Invite a registered K3 user as a client of a lock (POST …/client)."""
        form = {"accesskey": self._remember(access_key), "clientemail": email,
                "activeperiods": json.dumps(active_periods), "accesstype": access_type,
                "message": message}
        return await self._client_call("POST", lock_id, form)

    async def update_client(self, access_key: SecretStr | str, lock_id: str, email: str,
                            active_periods: Mapping[str, Any]) -> ClientResult:
        """Replace a client's active periods (PUT …/client)."""
        form = {"accesskey": self._remember(access_key), "clientemail": email,
                "activeperiods": json.dumps(active_periods)}
        return await self._client_call("PUT", lock_id, form)

    async def suspend_client(self, access_key: SecretStr | str, lock_id: str, email: str,
                             suspend: bool = True) -> ClientResult:
        """Suspend (or, with suspend=False, restore) a client (PATCH …/client)."""
        form = {"accesskey": self._remember(access_key), "clientemail": email,
                "action": "SUSPEND" if suspend else "RESTORE"}
        return await self._client_call("PATCH", lock_id, form)

    async def delete_client(self, access_key: SecretStr | str, lock_id: str,
                            email: str) -> ClientResult:
        """Remove a client from a lock (DELETE …/client)."""
        form = {"accesskey": self._remember(access_key), "clientemail": email}
        return await self._client_call("DELETE", lock_id, form)

    # --- plumbing -----------------------------------------------------------------------------

    def _remember(self, secret: SecretStr | str) -> str:
        value = _secret(secret)
        self._secrets.add(value)
        return value

    async def _client_call(self, method: str, lock_id: str, form: dict[str, str]) -> ClientResult:
        path = f"/k3connect/{quote(lock_id, safe='')}/client"
        # PUT/PATCH/DELETE set a state: safe to repeat. POST invites: never repeated after sending.
        body = await self._request(method, UTILITY, path, form=form,
                                   idempotent=method != "POST")
        return parse_model(VENDOR, ClientResult, body, f"{method} {path}")

    async def _get(self, model: type[M], category: str, path: str,
                   params: Mapping[str, str] | None = None) -> M:
        body = await self._request("GET", category, path, params=params)
        return parse_model(VENDOR, model, body, f"GET {path}")

    async def _get_list(self, model: type[M], path: str,
                        params: Mapping[str, str] | None = None) -> list[M]:
        body = await self._request("GET", UTILITY, path, params=params)
        if not isinstance(body, list):
            raise VendorFault(VENDOR, f"GET {path}: expected a JSON list, got "
                                      f"{type(body).__name__}")
        return [parse_model(VENDOR, model, item, f"GET {path}") for item in body]

    async def _request(self, method: str, category: str, path: str, *,
                       params: Mapping[str, str] | None = None,
                       form: Mapping[str, str] | None = None,
                       idempotent: bool | None = None) -> Any:
        """The one place a call is sent and its answer judged (status and body)."""
        base = self._netcode if category == NETCODE else self._utility
        # A throttling 429 is retried by VendorHttp and ends as VendorRateLimited; the quota's
        # 429 comes back at once (retrying it would be billed and refused again).
        reply = await self._http.request(
            method, base + path, params=params, data=form, idempotent=idempotent,
            headers={"x-api-key": self._api_key, "Accept": "application/json"})
        if quota_refusal(reply):
            raise QuotaRefusedByVendor(VENDOR, f"{method} {path}: Codelocks refused the call "
                                               "(429 Limit Exceeded): its count of this month's "
                                               f"{category} calls has reached the quota", category)
        where = f"{method} {path}"
        if reply.looks_like_html():
            raise VendorFault(VENDOR, f"{where}: HTTP {reply.status} answered an HTML page")
        body = reply.json()
        if not reply.ok:
            raise self._status_error(reply, where, body)
        error = self._body_error(where, body)
        if error is not None:
            raise error
        return body

    def _text(self, value: object) -> str:
        return vendor_text(value, 200, self._secrets)

    def _status_error(self, reply: Reply, where: str, body: Any) -> VendorError:
        message = body.get("message") if isinstance(body, dict) else None
        text = self._text(message or reply.snippet())
        if reply.status == 403:
            return VendorAuthError(VENDOR, f"{where}: HTTP 403 {text} (check codelocks.api_key)")
        if reply.status == 404 and text.lower().startswith("missing required parameter"):
            return VendorBadRequest(VENDOR, f"{where}: HTTP 404 {text}", 404)
        return status_error(VENDOR, reply.status, f"{where}: HTTP {reply.status} {text}")

    def _body_error(self, where: str, body: Any) -> VendorError | None:
        """The error an HTTP 200 body carries, if any (the three shapes of FIELD-NOTES)."""
        if not isinstance(body, dict):
            return None
        message = self._text(body.get("message") or "")
        error = body.get("error")
        if error:
            name = self._text(error)
            text = f"{where}: {name}" + (f": {message}" if message else "")
            key = name.upper().replace(" ", "").replace("_", "")
            if key in _AUTH_ERRORS:
                return VendorAuthError(VENDOR, text + " (check codelocks.access_keys)")
            if key == "NOTFOUND" or "not found" in message.lower():
                return VendorNotFound(VENDOR, text)
            return VendorBadRequest(VENDOR, text, name)
        if str(body.get("netcode", "")).upper() == "ERROR":
            return VendorBadRequest(VENDOR, f"{where}: the vendor refused to generate a NetCode "
                                            "(check the start time, duration and lock)", "netcode")
        if str(body.get("status", "")).lower() == "error":
            text = f"{where}: error" + (f": {message}" if message else "")
            if "not found" in message.lower():
                return VendorNotFound(VENDOR, text)
            return VendorBadRequest(VENDOR, text, "status")
        return None


def check_lock_model(model: str, *, init: bool = False) -> str:
    """The lock model in upper case, or ValueError naming the allowed ones."""
    allowed = INIT_MODELS if init else LOCK_MODELS
    value = model.strip().upper()
    if value not in allowed:
        raise ValueError(f"lock model must be one of {', '.join(allowed)}")
    return value

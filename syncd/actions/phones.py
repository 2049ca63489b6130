"""Operator actions on phones at either provider (NeoLock or Knox Guard), each in the action log.

An action first finds which provider holds the device (vendor.phones; ambiguous or unknown
devices need an explicit provider), re-reads the device from that vendor (the stored state may
be stale), refuses an action its current state does not allow, naming the state, and only then
calls the vendor. Every outcome — ok, refused (by syncd or by the vendor's 4000310) or failed — is
appended to the hash-chained action log with the vendor's answer, never a secret.

Which states allow which action follows knox-guard-api.md's state table (Pending devices are
accepted or rejected; Enrolled devices can be locked, unlocked, messaged and blinked; Completed
devices are out of Knox Guard's control); the vendor still has the last word. Delete is allowed
only for devices outside Knox Guard's control (Pending, Rejected, Accepted, Completed): a device
it still controls is completed first, so that no locked phone is orphaned.

Knox Guard actions also have asynchronous variants: the answer is a transaction id, and
`finish_transaction()` polls POST /transaction until every device has its result (or the wait
runs out) and appends that result to the action log as `phone.transaction`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

from pydantic import BaseModel

from syncd.db import phone_lookup
from syncd.db.actions import Outcome, record_action
from syncd.db.pool import Database
from syncd.errors import SyncdError, VendorError, VendorStateInvalid
from syncd.vendors.knoxguard import KnoxGuardClient, TransactionPending, TransactionResult
from syncd.vendors.neolock import NeoLockClient

PROVIDERS = ("knoxguard", "neolock")
ALLOWED: dict[str, frozenset[str]] = {
    "approve": frozenset({"Pending"}),
    "lock": frozenset({"Enrolled", "Blinked", "Locked"}),
    "unlock": frozenset({"Locked", "Locking"}),
    "complete": frozenset({"Accepted", "Enrolled", "Blinked", "Locked"}),
    "message": frozenset({"Enrolled", "Blinked", "Locking", "Locked"}),
    "blink": frozenset({"Enrolled", "Blinked"}),
    "delete": frozenset({"Pending", "Rejected", "Accepted", "Completed"}),
}
CONSOLE = {"Accepted": "Activating", "Enrolled": "Active", "Blinked": "Reminder On",
           "StartingReminder": "Starting Reminder", "StoppingReminder": "Stopping Reminder"}
_UID = re.compile(r"^[A-Za-z0-9]{8,20}$")


class PhoneActionError(SyncdError):
    """The action cannot be attempted (provider unknown or ambiguous, provider lacks the action)."""


class PhoneVendor(Protocol):
    """What an action needs from a provider: read a device's state, and call the action."""

    async def state(self, device_uid: str) -> str | None:
        """The device's current Knox Guard state, read from the vendor."""

    async def act(self, action: str, device_uid: str, params: dict[str, Any]) -> BaseModel:
        """Carry out `action`; return the vendor's answer."""


@dataclasses.dataclass(frozen=True)
class KnoxVendor:
    """Knox Guard direct tenant."""

    client: KnoxGuardClient

    async def state(self, device_uid: str) -> str | None:
        """The device's state from devices/list."""
        return (await self.client.get_device(device_uid)).status

    async def act(self, action: str, device_uid: str, params: dict[str, Any]) -> BaseModel:
        """Send the action to Knox Guard (its …Async variant when params["asynchronous"])."""
        c, p, a = self.client, params, bool(params.get("asynchronous"))
        calls: dict[str, Callable[[], Awaitable[BaseModel]]] = {
            "approve": lambda: c.approve(device_uid, p.get("approve_id"), p.get("comment"),
                                         asynchronous=a),
            "lock": lambda: c.lock(device_uid, p.get("message"), p.get("tel"), p.get("email"),
                                   asynchronous=a),
            "unlock": lambda: c.unlock(device_uid, asynchronous=a),
            "complete": lambda: c.complete(device_uid, asynchronous=a),
            "message": lambda: c.send_message(device_uid, p.get("message") or "", p.get("tel"),
                                              p.get("email"), asynchronous=a),
            "blink": lambda: c.blink(p["blink"], asynchronous=a),
            "delete": lambda: c.delete(device_uid, asynchronous=a),
        }
        return await calls[action]()


@dataclasses.dataclass(frozen=True)
class NeoLockVendor:
    """NeoLock (reseller API over Knox Guard): no blink."""

    client: NeoLockClient

    async def state(self, device_uid: str) -> str | None:
        """The device's state from GET /clients/devices/{deviceUid}."""
        return (await self.client.get_device(device_uid)).status

    async def act(self, action: str, device_uid: str, params: dict[str, Any]) -> BaseModel:
        """Send the action to NeoLock."""
        c, p = self.client, params
        calls: dict[str, Callable[[], Awaitable[BaseModel]]] = {
            "approve": lambda: c.approve(device_uid),
            "lock": lambda: c.lock(device_uid, p.get("message") or "", p.get("tel") or ""),
            "unlock": lambda: c.unlock(device_uid, p.get("message") or "", p.get("tel") or ""),
            "complete": lambda: c.complete(device_uid),
            "message": lambda: c.send_message(device_uid, p.get("message") or ""),
            "delete": lambda: c.delete(device_uid),
        }
        if action not in calls:
            raise PhoneActionError(f"neolock has no {action} action (Knox Guard tenants only)")
        return await calls[action]()


@dataclasses.dataclass(frozen=True)
class ActionOutcome:
    """How an operator action ended, and its action-log sequence number."""

    device_uid: str
    provider: str
    action: str
    outcome: str  # ok | refused | failed
    state: str | None
    message: str
    seq: int
    transaction_id: str | None = None  # an asynchronous action's, to wait for


async def resolve_provider(db: Database, device_uid: str, provider: str | None) -> str:
    """The provider holding the device: the one given, else the only one listing it."""
    if provider is not None:
        if provider not in PROVIDERS:
            raise PhoneActionError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        return provider
    found = await phone_lookup.providers_of(db, device_uid)
    if len(found) == 1:
        return found[0]
    where = "both " + " and ".join(found) if found else "no provider (as of the last sync)"
    raise PhoneActionError(f"device {device_uid} is listed by {where}: give --provider")


def check_possible(provider: str, action: str, configured: Collection[str]) -> None:
    """Raise PhoneActionError when `action` cannot go to `provider` at all, whatever the state."""
    if provider not in configured:
        raise PhoneActionError(f"{provider} is not configured (no [{provider}] section)")
    if provider == "neolock" and action == "blink":
        raise PhoneActionError("neolock has no blink action (Knox Guard tenants only)")


def console(state: str | None) -> str:
    """The Knox Guard console's name for an API state (FIELD-NOTES)."""
    return "unknown" if state is None else CONSOLE.get(state, state)


def _answer(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def perform(db: Database, vendors: dict[str, PhoneVendor], device_uid: str, action: str,
                  *, actor: str, provider: str | None = None,
                  params: dict[str, Any] | None = None,
                  scrub: Callable[[str], str] = lambda s: s) -> ActionOutcome:
    """Re-read the device, refuse a state that does not allow `action`, else send it; log it."""
    params = params or {}
    provider = await resolve_provider(db, device_uid, provider)
    check_possible(provider, action, vendors)
    if provider == "neolock" and params.get("asynchronous"):
        raise PhoneActionError("neolock has no asynchronous actions (Knox Guard tenants only)")
    vendor = vendors[provider]
    name = f"phone.{action}"
    detail: dict[str, Any] = {k: v for k, v in params.items() if k != "blink"}
    if "blink" in params:
        detail["blink"] = params["blink"].body()
    try:
        state = await vendor.state(device_uid)
    except VendorError as err:
        text = scrub(str(err))
        seq = await record_action(db, actor=actor, action=name, subject=device_uid, provider=provider,
                                  outcome="failed", detail={**detail, "error": text})
        return ActionOutcome(device_uid, provider, action, "failed", None,
                             f"could not read the device: {text}", seq)
    detail["state_before"] = state
    if state not in ALLOWED[action]:
        allowed = ", ".join(sorted(ALLOWED[action]))
        text = (f"refused: the device is {state} (console: {console(state)}); {action} needs one "
                f"of {allowed}")
        seq = await record_action(db, actor=actor, action=name, subject=device_uid, provider=provider,
                                  outcome="refused", detail={**detail, "reason": text})
        return ActionOutcome(device_uid, provider, action, "refused", state, text, seq)
    try:
        answer = await vendor.act(action, device_uid, params)
    except VendorStateInvalid as err:
        text = f"refused by {provider}: {scrub(err.reason or str(err))}"
        seq = await record_action(db, actor=actor, action=name, subject=device_uid, provider=provider,
                                  outcome="refused", detail={**detail, "vendor_code": err.code,
                                                             "reason": text})
        return ActionOutcome(device_uid, provider, action, "refused", state, text, seq)
    except VendorError as err:
        text = scrub(str(err))
        seq = await record_action(db, actor=actor, action=name, subject=device_uid, provider=provider,
                                  outcome="failed", detail={**detail, "error": text})
        return ActionOutcome(device_uid, provider, action, "failed", state, text, seq)
    seq = await record_action(db, actor=actor, action=name, subject=device_uid, provider=provider,
                              outcome="ok", detail={**detail, "vendor_answer": _answer(answer)})
    txn = getattr(answer, "transaction_id", None) if params.get("asynchronous") else None
    return ActionOutcome(device_uid, provider, action, "ok", state,
                         f"accepted as transaction {txn}" if txn else "sent", seq, txn)


@dataclasses.dataclass(frozen=True)
class TransactionOutcome:
    """An asynchronous request's end: ok, refused, failed, or pending (not done in the wait)."""

    transaction_id: str
    outcome: str
    message: str
    result: TransactionResult | None
    seq: int | None  # its action-log row; None while pending or unreadable (nothing learnt)


def _state_refusal(item: dict[str, Any]) -> bool:
    error = item.get("error")
    return isinstance(error, dict) and str(error.get("code")) == "4000310"


def _failure(item: dict[str, Any]) -> str:
    found = item.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    words = [str(error[k]) for k in ("code", "message") if error.get(k) not in (None, "")]
    reason = f" ({error['reason']})" if error.get("reason") else ""
    return f"{item.get('deviceUid') or '?'}: {' '.join(words) or item.get('result')}{reason}"


async def finish_transaction(db: Database, client: KnoxGuardClient, transaction_id: str, *,
                             actor: str, timeout: float, device_uid: str | None = None,
                             action: str | None = None,
                             scrub: Callable[[str], str] = lambda s: s) -> TransactionOutcome:
    """Poll the transaction up to `timeout` seconds; once done, log its result (all devices
    succeeded: ok; the vendor refused by state: refused; else failed)."""
    try:
        result = await client.wait_transaction(transaction_id, timeout)
    except TransactionPending as err:
        when = f"after {timeout:g}s" if timeout > 0 else "yet"
        return TransactionOutcome(
            transaction_id, "pending", f"not done {when} ({len(err.last.results)} of "
            f"{err.last.count} results); the request stands: look again with `syncd phones "
            f"transaction {transaction_id} --wait`", err.last, None)
    except VendorError as err:
        return TransactionOutcome(transaction_id, "failed", f"could not read the transaction: "
                                  f"{scrub(str(err))}", None, None)
    failures = [r for r in result.results if str(r.get("result", "")).upper() != "SUCCESS"]
    # "refused" only when the vendor's state refusal (4000310) is every failure's reason.
    outcome: Outcome = "ok" if not failures else \
        "refused" if all(_state_refusal(r) for r in failures) else "failed"
    message = (f"{result.success} of {result.count} done" if not failures else
               f"{len(failures)} of {result.count} failed: "
               + "; ".join(scrub(_failure(r)) for r in failures[:5]))
    uids = {str(r.get("deviceUid")) for r in result.results if r.get("deviceUid")}
    subject = device_uid or (uids.pop() if len(uids) == 1 else f"transaction:{transaction_id}")
    seq = await record_action(db, actor=actor, action="phone.transaction", subject=subject,
                              provider="knoxguard", outcome=outcome,
                              detail={"transaction_id": transaction_id, "action": action,
                                      "count": result.count, "success": result.success,
                                      "fail": result.fail,
                                      "results": [_scrubbed(r, scrub) for r in result.results]})
    return TransactionOutcome(transaction_id, outcome, message, result, seq)


def _scrubbed(item: dict[str, Any], scrub: Callable[[str], str]) -> Any:
    return json.loads(scrub(json.dumps(item, default=str)))


@dataclasses.dataclass(frozen=True)
class ParsedUids:
    """Device ids read from an upload file, and the lines that were not device ids."""

    uids: list[str]
    invalid: list[tuple[int, str, str]]  # (line number, line, why)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def parse_upload(lines: Iterable[str]) -> ParsedUids:
    """Device ids from CSV (a deviceUid/imei/serial column, else the first) or one id a line.

    Blank lines and `#` comments are skipped; a 15-digit IMEI must pass its Luhn check; an id
    given twice is reported on its second line.
    """
    uids: list[str] = []
    invalid: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    column = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        cells = [c.strip().strip('"') for c in line.split(",")] if "," in line else [line]
        lowered = [c.lower() for c in cells]
        header = next((lowered.index(h) for h in ("deviceuid", "device_uid", "imei", "serial")
                       if h in lowered), None)
        if header is not None and not uids and not invalid:
            column = header
            continue
        value = cells[column] if column < len(cells) else ""
        why = None
        if not _UID.match(value):
            why = "not a device id (IMEI or serial: 8 to 20 letters and digits)"
        elif value.isdigit() and len(value) == 15 and not _luhn_ok(value):
            why = "IMEI check digit is wrong"
        elif value in seen:
            why = f"repeats line {seen[value]}"
        if why is not None:
            invalid.append((number, raw.rstrip("\r\n")[:80], why))
            continue
        seen[value] = number
        uids.append(value)
    return ParsedUids(uids, invalid)


@dataclasses.dataclass(frozen=True)
class UploadOutcome:
    """One upload request's answer: its id, counts and the vendor's invalid reasons."""

    upload_id: str | None
    sent: int
    valid: int | None
    invalid: list[tuple[str | None, str | None]]
    seq: int
    error: str | None = None


Uploader = Callable[[list[str]], Awaitable[Any]]


def uploader(client: KnoxGuardClient | NeoLockClient, *, auto_accept: bool) -> Uploader:
    """The provider's upload call (Knox Guard's other documented flags stay false)."""
    return lambda uids: client.upload_devices(uids, auto_accept=auto_accept)


async def upload(db: Database, provider: str, send: Uploader, uids: list[str], *, actor: str,
                 chunk: int = 10_000,
                 scrub: Callable[[str], str] = lambda s: s) -> list[UploadOutcome]:
    """Upload device ids in chunks (Knox Guard takes at most 10,000); log each request."""
    outcomes: list[UploadOutcome] = []
    for start in range(0, len(uids), chunk):
        part = uids[start:start + chunk]
        try:
            answer = await send(part)
        except VendorError as err:
            text = scrub(str(err))
            seq = await record_action(db, actor=actor, action="phone.upload", subject="upload",
                                      provider=provider, outcome="failed",
                                      detail={"devices": part, "error": text})
            outcomes.append(UploadOutcome(None, len(part), None, [], seq, text))
            break  # what follows would most likely fail the same way
        reasons = [(r.device_uid, r.reason) for r in answer.invalid_reasons]
        upload_id = answer.upload_id
        seq = await record_action(
            db, actor=actor, action="phone.upload", subject=f"upload:{upload_id or '?'}",
            provider=provider, outcome="ok",
            detail={"devices": part, "vendor_answer": _answer(answer)})
        outcomes.append(UploadOutcome(upload_id, len(part), answer.valid_device_count, reasons, seq))
    return outcomes

"""Request validation and device updates of the Knox Guard simulator's device actions.

Blink follows knox-guard-api.md: interval 3..86400 s, message required and ≤ 200 characters, a tel
or an email, timeLimit (two hours 0..23) required when timeLimitEnable or daysLimitEnable is true,
daysLimit (two weekdays 0..6) required when daysLimitEnable is true. Approve: deviceUid required,
approveId ≤ 50, approveComment ≤ 1000. Lock and sendMessage messages are held to blink's 200
characters (a guess; sendMessage's message is required). Failures raise Refusal 400 4000000
RESOURCE_INVALID_PARAM with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from syncd.devtools.simulators.kg_core import Device, Refusal

IDENTIFIERS = ("objectId", "deviceUid", "approveId")


def _invalid(reason: str) -> NoReturn:
    raise Refusal(400, {"result": "FAIL", "error": {
        "code": 4000000, "message": "RESOURCE_INVALID_PARAM", "reason": reason}})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(params: dict[str, Any], key: str, limit: int, *, required: bool = False) -> None:
    value = params.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        _invalid(f"{key} is required and must be at most {limit} characters" if required
                 else f"{key} must be a string of at most {limit} characters")


def _pair(params: dict[str, Any], key: str, high: int) -> None:
    value = params.get(key)
    if not (isinstance(value, list) and len(value) == 2
            and all(_is_int(v) and 0 <= v <= high for v in value)):
        _invalid(f"{key} must be an array of 2 integers between 0 and {high}")


def _named(params: dict[str, Any]) -> None:
    if not any(isinstance(params.get(k), str) and params.get(k) for k in IDENTIFIERS):
        _invalid("One of objectId, deviceUid or approveId is required")


def validate_approve(params: dict[str, Any]) -> None:
    """Approve needs a deviceUid; approveId ≤ 50 and approveComment ≤ 1000 characters."""
    uid = params.get("deviceUid")
    if not isinstance(uid, str) or not uid:
        _invalid("deviceUid is required")
    _text(params, "approveId", 50)
    _text(params, "approveComment", 1000)


def validate_blink(params: dict[str, Any]) -> None:
    """Blink's documented rules (interval, message, contact, time and day limits)."""
    _named(params)
    interval = params.get("interval")
    if not (isinstance(interval, int) and not isinstance(interval, bool)
            and 3 <= interval <= 86400):
        _invalid("interval is required and must be between 3 and 86400")
    _text(params, "message", 200, required=True)
    if not any(isinstance(params.get(k), str) and params.get(k) for k in ("tel", "email")):
        _invalid("Either tel or email is required")
    for flag in ("timeLimitEnable", "daysLimitEnable"):
        if params.get(flag) is not None and not isinstance(params.get(flag), bool):
            _invalid(f"{flag} must be a boolean")
    if params.get("timeLimitEnable") or params.get("daysLimitEnable") or \
            params.get("timeLimit") is not None:
        _pair(params, "timeLimit", 23)
    if params.get("daysLimitEnable") or params.get("daysLimit") is not None:
        _pair(params, "daysLimit", 6)


def validate_lock(params: dict[str, Any]) -> None:
    """Lock names a device; its optional message is at most 200 characters."""
    _named(params)
    _text(params, "message", 200)


def validate_message(params: dict[str, Any]) -> None:
    """sendMessage names a device and carries a message of at most 200 characters."""
    _named(params)
    _text(params, "message", 200, required=True)


VALIDATORS: dict[str, Callable[[dict[str, Any]], None]] = {
    "approve": validate_approve, "lock": validate_lock, "unlock": _named, "blink": validate_blink,
    "complete": _named, "message": validate_message, "delete": _named,
}


def apply_params(device: Device, action: str, params: dict[str, Any]) -> None:
    """Record what the request tells the device (approveId, message, contact, reminder)."""
    def text(key: str) -> str | None:
        value = params.get(key)
        return value if isinstance(value, str) else None

    if action == "approve":
        device.approve_id, device.approve_comment = text("approveId"), text("approveComment")
    elif action in ("lock", "blink", "message"):
        device.message = text("message") or device.message
        device.tel, device.email = text("tel") or device.tel, text("email") or device.email
    if action == "lock":
        device.relocked = device.status == "Locked"
    elif action == "unlock":
        device.relocked = False
    elif action == "blink":
        device.reminder = {k: params.get(k) for k in (
            "interval", "message", "timeLimitEnable", "daysLimitEnable", "timeLimit", "daysLimit")}

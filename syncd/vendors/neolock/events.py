"""NeoLock's pushed events, read defensively. The push body is undocumented: take what is
recognisable (camelCase and snake_case spellings, nested objects, lists of devices).

Pure functions: parsed JSON in, a `ParsedEvent` out. Nothing here trusts the shape.
"""

from __future__ import annotations

import decimal
from typing import Any, NamedTuple

_ID_KEYS = ("id", "eventId", "event_id", "uuid", "messageId", "notificationId")
_TYPE_KEYS = ("event", "eventType", "event_type", "type", "eventName")
_DEVICE_KEYS = ("deviceUid", "device_uid", "deviceId", "device_id", "imei", "objectId")
_UID_KEYS = _DEVICE_KEYS[:4]
_UID_OR_IMEI = (*_UID_KEYS, "imei")  # a uid field first; else the IMEI
_DEVICE_LIST_KEYS = ("deviceUids", "deviceList", "devices", "deviceIds")
_NESTED_KEYS = ("device", "data", "payload", "detail")
MAX_DEVICES = 1000  # one push naming more devices than this is not a hint we follow blindly
MAX_TEXT = 256
_INT_LIMIT = 10**65  # a number with more digits is no id or name


class ParsedEvent(NamedTuple):
    """What syncd could read from a push. A NamedTuple: intake makes one every push, in a
    third of a frozen dataclass's time."""

    event_id: tuple[str, str, str] | None  # (field, "s" or "n", exact text): see inbox dedupe_key
    event_type: str | None
    device_uids: tuple[str, ...]

    @property
    def subject(self) -> str | None:
        """The device uids as one bounded text (the inbox's `subject`), or None."""
        return ",".join(self.device_uids)[:1000] or None

    @property
    def parsed(self) -> bool:
        """True when the push names at least one device to re-read."""
        return bool(self.device_uids)


def _text(value: Any) -> str | None:
    if type(value) is str:  # the common case, first
        text = value.strip()
        return text[:MAX_TEXT] if text else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, decimal.Decimal):  # intake parses numbers exactly
        if not value.is_finite() or value != value.to_integral_value() or value.adjusted() > 64:
            return None
        value = int(value)
    elif isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:  # as a Decimal above
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text[:MAX_TEXT] if text else None
    return None


def _event_id(doc: dict[str, Any]) -> tuple[str, str, str] | None:
    """The first id field holding a non-blank string or a finite number, exactly as sent."""
    for key in _ID_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return key, "s", value
        if isinstance(value, decimal.Decimal) and value.is_finite():
            return key, "n", str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return key, "n", str(value)
    return None


def _first(doc: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = doc.get(key)
        if value is None:  # most keys are absent
            continue
        if type(value) is str:  # as _text, without the call
            text = value.strip()
            if text:
                return text[:MAX_TEXT]
        elif found := _text(value):
            return found
    return None


def _devices(doc: dict[str, Any], depth: int = 0) -> list[str]:
    found: list[str] = []
    uid = _first(doc, _UID_OR_IMEI)
    if uid:
        found.append(uid)
    keys = doc.keys()
    if not keys.isdisjoint(_DEVICE_LIST_KEYS):  # one test in C for the common flat push
        for key in _DEVICE_LIST_KEYS:
            items = doc.get(key)
            if isinstance(items, list):
                for item in items[:MAX_DEVICES]:
                    if isinstance(item, dict):
                        found.extend(_devices(item, depth + 1))
                    elif _text(item):
                        found.append(str(_text(item)))
    if depth < 2 and not keys.isdisjoint(_NESTED_KEYS):
        for key in _NESTED_KEYS:
            nested = doc.get(key)
            if isinstance(nested, dict):
                found.extend(_devices(nested, depth + 1))
    return found


def parse_event(doc: Any) -> ParsedEvent:
    """Extract the event id, type and device uids from a decoded push body of any shape."""
    if isinstance(doc, list):
        events = [parse_event(item) for item in doc[:MAX_DEVICES] if isinstance(item, dict)]
        uids = [u for e in events for u in e.device_uids]
        return ParsedEvent(None, events[0].event_type if events else None,
                           tuple(dict.fromkeys(uids))[:MAX_DEVICES])
    if not isinstance(doc, dict):
        return ParsedEvent(None, None, ())
    event_type = _first(doc, _TYPE_KEYS)
    if event_type is None:
        for key in _NESTED_KEYS:
            nested = doc.get(key)
            if isinstance(nested, dict) and (event_type := _first(nested, _TYPE_KEYS)):
                break
    return ParsedEvent(_event_id(doc), event_type,
                       tuple(dict.fromkeys(_devices(doc)))[:MAX_DEVICES])

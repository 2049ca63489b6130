"""Reading a pushed event defensively. The push body is undocumented: take what is recognisable.

Pure functions: bytes or parsed JSON in, a `ParsedEvent` out. Nothing here trusts the shape.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import json
from typing import Any

_ID_KEYS = ("id", "eventId", "event_id", "uuid", "messageId", "notificationId")
_TYPE_KEYS = ("event", "eventType", "event_type", "type", "eventName")
_DEVICE_KEYS = ("deviceUid", "device_uid", "deviceId", "device_id", "imei", "objectId")
_DEVICE_LIST_KEYS = ("deviceUids", "deviceList", "devices", "deviceIds")
_NESTED_KEYS = ("device", "data", "payload", "detail")
MAX_DEVICES = 1000  # one push naming more devices than this is not a hint we follow blindly
MAX_TEXT = 256


@dataclasses.dataclass(frozen=True)
class ParsedEvent:
    """What syncd could read from a push."""

    event_id: tuple[str, str, str] | None  # (field, "s" or "n", exact text): see dedupe_key
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


MAX_KEY_TEXT = 200  # longer ids are hashed: the key stays short enough for its unique index


def dedupe_key(event: ParsedEvent, body: bytes) -> str:
    """The event's own id when it has one, else a SHA-256 of the exact body.

    Distinct ids stay distinct: the field, the JSON type and the exact text all count (`1`,
    `"1"`, `1.0`, `" 1 "` and `{"eventId": "1"}` are five keys), and long ids are hashed whole,
    never cut. The common case, a short string under "id", keeps the plain form `id:<text>`.
    Prefixes never collide: "id:" (plain), "idk:" (field and type), "idh:" (hashed), "sha256:".
    """
    if event.event_id is None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    field, kind, text = event.event_id
    if len(text) <= MAX_KEY_TEXT and text.isprintable():
        return f"id:{text}" if (field, kind) == ("id", "s") else f"idk:{field}:{kind}:{text}"
    return f"idh:{field}:{kind}:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, decimal.Decimal):  # intake parses numbers exactly
        if not value.is_finite() or value != value.to_integral_value() or value.adjusted() > 64:
            return None
        value = int(value)
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
        found = _text(doc.get(key))
        if found:
            return found
    return None


def _devices(doc: dict[str, Any], depth: int = 0) -> list[str]:
    found: list[str] = []
    uid = _first(doc, _DEVICE_KEYS[:4]) or _first(doc, ("imei",))
    if uid:
        found.append(uid)
    for key in _DEVICE_LIST_KEYS:
        items = doc.get(key)
        if isinstance(items, list):
            for item in items[:MAX_DEVICES]:
                if isinstance(item, dict):
                    found.extend(_devices(item, depth + 1))
                elif _text(item):
                    found.append(str(_text(item)))
    if depth < 2:
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


def loads_exact(text: str) -> Any:
    """Decode JSON with every number as an exact Decimal: no float rounding, no digit limit.

    The inbox worker reads stored bodies back with this, so whatever intake accepted (PostgreSQL
    prints `1e131071` as a 131,072-digit integer) decodes again. Raises ValueError or RecursionError.
    """
    return json.loads(text, parse_constant=_no_constants, parse_float=decimal.Decimal,
                      parse_int=decimal.Decimal)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def unstorable(doc: Any) -> str | None:
    """Why PostgreSQL's jsonb would refuse `doc` (NUL characters, lone surrogates), else None."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return "JSON contains a NUL character, which PostgreSQL cannot store"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "JSON contains an unpaired UTF-16 surrogate"
    return None

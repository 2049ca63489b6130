"""Push bodies as intake and the inbox worker handle them, whatever the vendor: exact decoding,
what PostgreSQL's jsonb cannot store, and the dedupe key of an event.

The vendor's own shape (which field holds the id, the devices) is read in vendors/<name>/events.py.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from typing import Any

MAX_KEY_TEXT = 200  # longer ids are hashed: the key stays short enough for its unique index


def dedupe_key(event_id: tuple[str, str, str] | None, body: bytes) -> str:
    """The event's own id (field, JSON type "s"/"n", exact text) if it has one, else a SHA-256
    of the exact body.

    Distinct ids stay distinct: the field, the JSON type and the exact text all count (`1`,
    `"1"`, `1.0`, `" 1 "` and `{"eventId": "1"}` are five keys), and long ids are hashed whole,
    never cut. The common case, a short string under "id", keeps the plain form `id:<text>`.
    Prefixes never collide: "id:" (plain), "idk:" (field and type), "idh:" (hashed), "sha256:".
    """
    if event_id is None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    field, kind, text = event_id
    if len(text) <= MAX_KEY_TEXT and text.isprintable():
        return "id:" + text if field == "id" and kind == "s" else f"idk:{field}:{kind}:{text}"
    return f"idh:{field}:{kind}:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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

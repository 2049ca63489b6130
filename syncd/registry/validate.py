"""Turn a `POST /v2/device` body (JSON, form-encoded or multipart) into a Registration, or say why not.

Pure functions of bytes: no I/O, no clock. Every refusal names each offending field, so the
answer is a 400 that the app can ignore and an operator can read.

MAC normalisation: surrounding whitespace and the separators `:`, `-`, `.` and ` ` are removed
and letters upper-cased, so `a1:b2:c3:d4:e5:f6`, `A1-B2-C3-D4-E5-F6` and `a1b2.c3d4.e5f6` are all
`A1B2C3D4E5F6`. What remains must be 12 to 64 hex digits (a MAC, or the longer hex identifiers
apps send where the OS hides the MAC, e.g. an Android ID or a UUID). The placeholders the OSes
hand out instead of a real MAC (02:00:00:00:00:00 on Android 6+, all zeros, all ones) are refused:
every such device would otherwise share, and overwrite, one row.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from email import policy
from email.parser import BytesParser
from typing import Any, NamedTuple

FIELDS = ("mac_address", "device_os", "device_version", "device_type", "app_version", "app_name")
PLACEHOLDER_MACS = frozenset({"020000000000", "000000000000", "FFFFFFFFFFFF"})
_SEPARATORS = str.maketrans("", "", ":-. ")
_HEX_ID = re.compile(r"[0-9A-F]{12,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_FORM_FIELDS = 64


class Invalid(ValueError):
    """The body is not a valid registration; `errors` maps each offending field to its problem."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Registration(NamedTuple):
    """A device registration with every field present, bounded and cleaned (a NamedTuple: one is
    made per request, in a third of a frozen dataclass's time)."""

    mac_address: str
    device_os: str
    device_version: str
    device_type: str
    app_version: str
    app_name: str


def normalise_mac(raw: str) -> str | None:
    """The MAC without separators, upper case; None when it is not 12–64 hex digits."""
    mac = raw.strip().translate(_SEPARATORS).upper()
    return mac if _HEX_ID.fullmatch(mac) else None


def parse(body: bytes, content_type: str, max_field_length: int) -> Registration:
    """Decode `body` by its content type (sniffed when absent or unknown) and validate it."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        fields = _json_fields(body)
    elif kind == "application/x-www-form-urlencoded":
        fields = _form_fields(body)
    elif kind == "multipart/form-data":
        fields = _multipart_fields(body, content_type)
    elif body.lstrip()[:1] == b"{":
        fields = _json_fields(body)
    else:
        fields = _form_fields(body)
    return validate(fields, max_field_length)


def validate(fields: dict[str, Any], max_field_length: int) -> Registration:
    """Check the six required fields; raise Invalid naming every field that is wrong."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            errors[name] = "missing or empty"
        elif not isinstance(value, str):
            errors[name] = f"must be a string, not {_json_type(value)}"
        elif len(value) > max_field_length:
            errors[name] = f"longer than {max_field_length} characters"
        elif not (value.isascii() and value.isprintable()) and (  # the usual case, checked fast
                _CONTROL.search(value) or not _encodable(value)):
            errors[name] = "contains control characters or invalid Unicode"
        else:
            values[name] = value
    if "mac_address" in values:
        mac = normalise_mac(values["mac_address"])
        if mac is None:
            errors["mac_address"] = "not a MAC address (12 hex digits, separators allowed)"
        elif mac in PLACEHOLDER_MACS:
            errors["mac_address"] = "a placeholder MAC the OS reports instead of the real one"
        else:
            values["mac_address"] = mac
    if errors:
        raise Invalid(_summary(errors), errors)
    return Registration(**values)


def _summary(errors: dict[str, str]) -> str:
    missing = [name for name, problem in errors.items() if problem == "missing or empty"]
    parts = [f"missing or empty: {', '.join(missing)}"] if missing else []
    parts += [f"{name}: {problem}" for name, problem in errors.items()
              if problem != "missing or empty"]
    return "; ".join(parts)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")  # a JSON "\ud800" escape decodes to a lone surrogate
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unique(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise Invalid(f"field {key[:40]!r} is given more than once", {key[:40]: "duplicate"})
        found[key] = value
    return found


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads() with options builds a decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_no_constant)


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        doc = _DECODER.decode(body.decode("utf-8"))
    except Invalid:
        raise
    except UnicodeDecodeError:
        raise Invalid("the body is not valid UTF-8") from None
    except ValueError as err:  # JSONDecodeError, huge integers
        raise Invalid(f"the body is not valid JSON: {str(err)[:120]}") from None
    except RecursionError:
        raise Invalid("the body is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise Invalid(f"the body must be a JSON object, not {_json_type(doc)}")
    return doc


def _form_fields(body: bytes) -> dict[str, Any]:
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                       encoding="utf-8", errors="strict",
                                       max_num_fields=_MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise Invalid("the form body is not valid URL-encoded UTF-8") from None
    except ValueError:
        raise Invalid(f"the form body has more than {_MAX_FORM_FIELDS} fields") from None
    return _unique(pairs)


def _multipart_fields(body: bytes, content_type: str) -> dict[str, Any]:
    header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise Invalid("the multipart body has no parts (check the boundary)")
    pairs: list[tuple[str, Any]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if part.get_filename() is not None or part.is_multipart():
            pairs.append((name, []))  # a file where a field belongs: refused as not a string
            continue
        payload = part.get_payload(decode=True)
        try:
            pairs.append((name, payload.decode("utf-8") if isinstance(payload, bytes) else ""))
        except UnicodeDecodeError:
            raise Invalid(f"field {name[:40]!r} is not valid UTF-8", {name[:40]: "invalid UTF-8"}
                          ) from None
        if len(pairs) > _MAX_FORM_FIELDS:
            raise Invalid(f"the form body has more than {_MAX_FORM_FIELDS} fields")
    return _unique(pairs)

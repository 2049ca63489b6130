"""OpenAPI (JSON Schema 2020-12) descriptions of the registry routes' requests and responses."""

from __future__ import annotations

from typing import Any

from syncd.registry.validate import FIELDS

_NO_CONTROL = "[^\\u0000-\\u001f\\u007f-\\u009f]"
_TEXT = {"type": "string", "minLength": 1, "maxLength": 128,
         # not blank, no control characters (C0, DEL, C1)
         "pattern": f"^{_NO_CONTROL}*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{_NO_CONTROL}*$",
         "description": "Surrounding whitespace is trimmed; at most registry.max_field_length "
                        "(default 128) characters; not blank; no control characters."}
REGISTRATION: dict[str, Any] = {
    "type": "object",
    "required": list(FIELDS),
    "properties": {
        "mac_address": {"type": "string", "minLength": 12, "maxLength": 128,
                        "pattern": "^[0-9A-Fa-f]{2}([-:. ]?[0-9A-Fa-f]{2}){5,31}$",
                        "description": "Upsert key. Separators (: - . space) are removed and "
                                       "letters upper-cased; 12-64 hex digits must remain. "
                                       "Placeholder MACs (02:00:00:00:00:00, all 0, all F) "
                                       "are refused.",
                        "examples": ["A1B2C3D4E5F6", "a1:b2:c3:d4:e5:f6"]},
        **dict.fromkeys(FIELDS[1:], _TEXT),
    },
    "additionalProperties": True,
    "examples": [{"mac_address": "A1B2C3D4E5F6", "device_os": "iOS", "device_version": "14.5",
                  "device_type": "Mobile", "app_version": "2.0", "app_name": "MyApp"}],
}


def _envelope(data: dict[str, Any], **extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "timestamp", "time", "ip", "message", "data", *extra],
        "properties": {
            "status": {"type": "integer", "description": "the HTTP status, repeated"},
            "timestamp": {"type": "integer", "description": "Unix time of the answer, seconds"},
            "time": {"type": "number", "minimum": 0,
                     "description": "handling time in seconds (3 decimals)"},
            "ip": {"type": "string", "description": "the client's address as syncd saw it "
                                                    "(X-Forwarded-For only from trusted proxies)"},
            "message": {"type": "string"},
            "data": data,
            **extra,
        },
    }


_DEVICE = {"type": "object", "required": ["mac_address", "status", "ban_status"],
           "properties": {"mac_address": {"type": "string", "pattern": "^[0-9A-F]{12,64}$",
                                          "description": "normalised"},
                          "status": {"type": "integer", "description": "1: registered"},
                          "ban_status": {"type": "integer", "enum": [0, 1]}}}
_NULL = {"type": "null"}
DEVICE_OK = _envelope(_DEVICE)
BANNED = _envelope(_DEVICE, code={"const": "device_banned"})
INVALID = _envelope(_NULL, errors={"type": "object", "additionalProperties": {"type": "string"},
                                   "description": "each offending field and its problem"})
FAILED = _envelope(_NULL)
CONFIGS = _envelope({"type": "object", "required": ["device_management"],
                     "properties": {"device_management": {
                         "type": "integer",
                         "description": "1: the registry is enabled; anything else: disabled"}}})


def response(description: str, schema: dict[str, Any],
             headers: tuple[str, ...] = ()) -> dict[str, Any]:
    """An OpenAPI response object with a JSON body."""
    doc: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": schema}}}
    if headers:
        doc["headers"] = {h: {"schema": {"type": "integer"}} for h in headers}
    return doc


DEVICE_RESPONSES: dict[int, str | dict[str, Any]] = {
    200: response("registered or updated (the documented envelope)", DEVICE_OK),
    400: response("a field is missing, empty, too long or not a string, or the body is not "
                  "JSON / form data: nothing stored; `errors` names each field", INVALID),
    403: response("device_banned: the only answer an app should show its user", BANNED),
    404: response("the registry is disabled (registry.enabled = false)", FAILED),
    413: response("body over registry.max_body_bytes", FAILED),
    429: response("over the per-IP rate limit; retry after Retry-After seconds", FAILED,
                  ("Retry-After",)),
    503: response("database unavailable: nothing stored; retry after Retry-After seconds",
                  FAILED, ("Retry-After",)),
}
CONFIGS_RESPONSES: dict[int, str | dict[str, Any]] = {
    200: response("the registry's configuration for apps", CONFIGS),
    429: response("over the per-IP rate limit; retry after Retry-After seconds", FAILED,
                  ("Retry-After",)),
}
REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": REGISTRATION},
                "application/x-www-form-urlencoded": {"schema": REGISTRATION},
                "multipart/form-data": {"schema": REGISTRATION}},
}

"""What goes on the wire for one alert: Standard Webhooks (signed JSON) or Alertmanager v2.

Standard Webhooks: `webhook-id` (the outbox event id, stable per case and transition),
`webhook-timestamp` (Unix seconds at sending), `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` keyed by the base64 part after `whsec_`, one space-separated signature
per configured secret while a secret is being rotated.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from syncd.settings.checks import webhook_key

RESOLVING_SUFFIXES = (".resolved", ".recovered", ".restored")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`.

    The key is decoded as settings validated it (`settings_checks.webhook_key`), so a secret
    that passed `check-config` always signs."""
    mac = hmac.new(webhook_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """True when one of the `webhook-signature` entries matches `secret` (as a receiver checks)."""
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit():
        return False
    expected = sign(secret, msg_id, int(timestamp), body)
    return any(hmac.compare_digest(expected, given)
               for given in headers.get("webhook-signature", "").split())


@dataclasses.dataclass(frozen=True)
class Request:
    """An HTTP POST to make: where, which headers, which bytes."""

    url: str
    headers: dict[str, str]
    body: bytes


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The JSON body, compact and with stable key order."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def standard_webhook(url: str, secrets: Sequence[str], event_id: str, payload: dict[str, Any],
                     now: float) -> Request:
    """A signed Standard Webhooks request for one alert."""
    body = body_bytes(payload)
    timestamp = int(now)
    return Request(url, {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, event_id, timestamp, body) for s in secrets),
    }, body)


def alertmanager_url(url: str) -> str:
    """Alertmanager's alert endpoint under the configured base (kept if already given)."""
    stripped = url.rstrip("/")
    return stripped if stripped.endswith("/api/v2/alerts") else stripped + "/api/v2/alerts"


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def alertmanager_alert(event_id: str, payload: dict[str, Any], now: dt.datetime,
                       firing_for: dt.timedelta, *, ended_at: str | None = None) -> dict[str, Any]:
    """One Alertmanager v2 alert: identity in labels, facts in annotations, endsAt on resolution.

    A firing alert carries endsAt = now + `firing_for` (Alertmanager resolves an alert nobody
    re-sends); the deliverer re-sends open cases before that, as Prometheus does. The severity
    label is the one announced (`announced_severity`), so a case's alert keeps its identity
    while its severity falls, and its resolution ends the alert that fires. `ended_at` ends the
    alert at that time whatever the payload says.
    """
    kind = payload.get("kind") or str(payload.get("type", "alert")).split(".")[0]
    resolving = str(payload.get("type", "")).endswith(RESOLVING_SUFFIXES) or \
        payload.get("status") == "resolved"
    starts = payload.get("first_seen_at") or payload.get("timestamp") or now.isoformat()
    if ended_at is not None:
        ends = ended_at
    elif resolving:
        ends = payload.get("resolved_at") or now.isoformat()
    else:
        ends = (now + firing_for).isoformat()
    severity = payload.get("announced_severity") or payload.get("severity") or "warning"
    labels = {"alertname": f"syncd_{kind}".replace(".", "_"), "kind": _label(kind),
              "subject": _label(payload.get("subject")),
              "severity": _label(severity),
              "provider": _label(payload.get("provider")), "source": "syncd"}
    annotations = {
        "summary": f"{kind} {payload.get('subject', '')}: expected {payload.get('expected')}, "
                   f"actual {payload.get('actual')}",
        "expected": _label(payload.get("expected")), "actual": _label(payload.get("actual")),
        "case_id": _label(payload.get("case_id")), "type": _label(payload.get("type")),
        "webhook_id": event_id}
    return {"labels": {k: v for k, v in labels.items() if v},
            "annotations": {k: v for k, v in annotations.items() if v},
            "startsAt": str(starts), "endsAt": str(ends)}


def alertmanager_alerts(event_id: str, payload: dict[str, Any], now: dt.datetime,
                        firing_for: dt.timedelta) -> list[dict[str, Any]]:
    """The Alertmanager alerts one syncd alert posts: an escalation also ends the alert of the
    severity it replaces (Alertmanager tells alerts apart by their labels, severity among them)."""
    alert = alertmanager_alert(event_id, payload, now, firing_for)
    previous = payload.get("previous_severity")
    if not str(payload.get("type", "")).endswith(".escalated") or not previous:
        return [alert]
    replaced = payload | {"severity": previous, "announced_severity": previous}
    ended = str(payload.get("timestamp") or now.isoformat())
    return [alertmanager_alert(event_id, replaced, now, firing_for, ended_at=ended), alert]


def alertmanager(url: str, alerts: list[dict[str, Any]]) -> Request:
    """A POST of alerts to Alertmanager's /api/v2/alerts."""
    return Request(alertmanager_url(url), {"content-type": "application/json"},
                   json.dumps(alerts, separators=(",", ":")).encode())

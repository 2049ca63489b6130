"""Remediation plans: which action would fix a finding, and whether syncd may take it (pure)."""

from __future__ import annotations

import dataclasses
from typing import Any

from syncd.reconcile.findings import Finding


@dataclasses.dataclass(frozen=True)
class Policy:
    """What remediation may do on its own (`reconcile.allow_unlock`, `reconcile.allow_complete`)."""

    allow_unlock: bool = False
    allow_complete: bool = False


# kind → the action that fixes it (dotted, as in the action log), for the kinds syncd can fix.
ACTIONS: dict[str, str] = {
    "phone_not_locked": "phone.lock",
    "phone_locked_out": "phone.unlock",
    "phone_not_completed": "phone.complete",
    "terminal_differs": "terminal.update",
}


def plan_for(finding: Finding, policy: Policy) -> dict[str, Any] | None:
    """The stored plan for a finding: `{action, allowed, reason?}`, or None when nothing fixes it.

    Unlocking and completing are never done on their own unless configured: the plan still
    names the action so an operator sees what would fix it.
    """
    action = ACTIONS.get(finding.kind)
    if action is None:
        return None
    if action == "phone.unlock" and not policy.allow_unlock:
        return {"action": action, "allowed": False, "reason": "reconcile.allow_unlock is off"}
    if action == "phone.complete" and not policy.allow_complete:
        return {"action": action, "allowed": False, "reason": "reconcile.allow_complete is off"}
    return {"action": action, "allowed": True}

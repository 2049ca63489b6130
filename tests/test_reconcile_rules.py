"""Pure reconcile rules: each rule at its thresholds, as a clock moves (no database, no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest

from syncd.reconcile.findings import Thresholds
from syncd.reconcile.plan import Policy, plan_for
from syncd.reconcile.rules import health, phones, terminals

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
TH = Thresholds(grace=dt.timedelta(minutes=10), transitional=dt.timedelta(hours=1),
                licence=dt.timedelta(days=14), terminal_offline=dt.timedelta(hours=1),
                online_window=dt.timedelta(minutes=10), job_failures=3)
MIN = dt.timedelta(minutes=1)


def contract(desired: str, state: str | None, *, since: dt.datetime = T0,
             updated: dt.datetime = T0 - dt.timedelta(days=1),
             expiry: dt.datetime | None = None) -> phones.ContractRow:
    return phones.ContractRow("dev-1", desired, updated, None if state is None else "neolock",
                              state, since, expiry)


def kinds(row: phones.ContractRow, now: dt.datetime) -> list[tuple[str, bool]]:
    return [(f.kind, f.opens) for f in phones.contract_findings(row, now, TH)]


@pytest.mark.parametrize(("desired", "state"), [
    ("locked", "Locked"), ("active", "Enrolled"), ("active", "Blinked"),
    ("completed", "Completed"), ("completed", "Completing"), ("active", "Unlocking")])
def test_settled_and_agreeing_states_find_nothing(desired: str, state: str) -> None:
    """A contract whose vendor state is settled or on its way there is not drift."""
    assert kinds(contract(desired, state), T0 + 5 * MIN) == []


def test_locking_agrees_only_within_the_grace_window() -> None:
    """Locking for a locked contract is fine up to the grace window, drift one minute after."""
    row = contract("locked", "Locking", since=T0)
    assert kinds(row, T0 + 10 * MIN) == []
    assert kinds(row, T0 + 11 * MIN) == [("phone_not_locked", True)]


def test_a_fresh_mismatch_opens_nothing_until_the_grace_window_passes() -> None:
    """A mismatch younger than the grace window keeps cases open but opens none; then it opens."""
    row = contract("locked", "Enrolled", since=T0)
    assert kinds(row, T0 + 9 * MIN) == [("phone_not_locked", False)]
    assert kinds(row, T0 + 10 * MIN) == [("phone_not_locked", True)]
    changed = contract("locked", "Enrolled", since=T0 - dt.timedelta(days=2), updated=T0)
    assert kinds(changed, T0 + 5 * MIN) == [("phone_not_locked", False)]  # contract just changed


def test_a_locked_out_customer_is_critical() -> None:
    """Desired active but Locked (or Locking) at the vendor: critical."""
    for state in ("Locked", "Locking"):
        (found,) = phones.contract_findings(contract("active", state, since=T0 - dt.timedelta(hours=2)),
                                            T0, TH)
        assert (found.kind, found.severity, found.actual) == ("phone_locked_out", "critical", state)


def test_not_completed_and_other_differences() -> None:
    """Completed wanted but Locked: not_completed; active wanted but Completed: state_differs."""
    old = T0 - dt.timedelta(hours=2)
    assert kinds(contract("completed", "Locked", since=old), T0) == [("phone_not_completed", True)]
    assert kinds(contract("active", "Completed", since=old), T0) == [("phone_state_differs", True)]


def test_missing_device_after_grace() -> None:
    """A contract whose device no vendor holds: phone_missing, opening once past the grace window."""
    row = contract("locked", None, updated=T0)
    assert kinds(row, T0 + 5 * MIN) == [("phone_missing", False)]
    assert kinds(row, T0 + 10 * MIN) == [("phone_missing", True)]


def test_stuck_in_a_transitional_state_past_the_threshold() -> None:
    """Accepted (onboarding) for an active contract: fine for an hour, stuck after."""
    row = contract("active", "Accepted", since=T0)
    assert kinds(row, T0 + 60 * MIN) == []
    assert kinds(row, T0 + 61 * MIN) == [("phone_stuck", True)]
    completing = contract("completed", "Completing", since=T0)
    assert kinds(completing, T0 + 61 * MIN) == [("phone_stuck", True)]


def test_licence_expiring_within_the_horizon_then_expired() -> None:
    """Licence 15 days out: nothing; 14 days: warning; past: critical."""
    expiry = T0 + dt.timedelta(days=15)
    row = contract("active", "Enrolled", expiry=expiry)
    assert phones.contract_findings(row, T0, TH) == []
    (soon,) = phones.contract_findings(row, T0 + dt.timedelta(days=1), TH)
    assert (soon.kind, soon.severity) == ("phone_licence_expiring", "warning")
    (gone,) = phones.contract_findings(row, expiry, TH)
    assert gone.severity == "critical" and gone.actual is not None and "expired" in gone.actual


def test_unknown_device_is_info() -> None:
    """A device without a contract is info and has no plan."""
    found = phones.unknown_finding(phones.UnknownRow("knoxguard", "dev-9", "Enrolled"))
    assert (found.kind, found.severity, found.provider) == ("phone_unknown", "info", "knoxguard")
    assert plan_for(found, Policy(allow_unlock=True, allow_complete=True)) is None


def test_plans_never_unlock_or_complete_unless_allowed() -> None:
    """Lock is planned and allowed; unlock and complete only with their policy switches."""
    old = T0 - dt.timedelta(hours=2)
    lock, = phones.contract_findings(contract("locked", "Enrolled", since=old), T0, TH)
    unlock, = phones.contract_findings(contract("active", "Locked", since=old), T0, TH)
    complete, = phones.contract_findings(contract("completed", "Enrolled", since=old), T0, TH)
    assert plan_for(lock, Policy()) == {"action": "phone.lock", "allowed": True}
    assert plan_for(unlock, Policy())["allowed"] is False  # type: ignore[index]
    assert plan_for(complete, Policy())["allowed"] is False  # type: ignore[index]
    assert plan_for(unlock, Policy(allow_unlock=True)) == {"action": "phone.unlock",
                                                           "allowed": True}
    assert plan_for(complete, Policy(allow_complete=True)) == {"action": "phone.complete",
                                                               "allowed": True}


def terminal(**fields: object) -> terminals.TerminalRow:
    values: dict[str, object] = {"sn": "SN1", "expected": True, "listed": True, "terminal_id": 5,
                                 "alias": "Door", "area_code": "HQ", "expected_alias": "Door",
                                 "expected_area_code": "HQ", "state": 1,
                                 "last_activity": T0, "first_seen_at": T0 - dt.timedelta(days=9)}
    return terminals.TerminalRow(**(values | fields))  # type: ignore[arg-type]


def tkinds(row: terminals.TerminalRow, now: dt.datetime) -> list[str]:
    return [f.kind for f in terminals.terminal_findings(row, now, TH)]


def test_terminal_rules() -> None:
    """Healthy: nothing; missing, unknown (info), and alias/area differences are found."""
    assert tkinds(terminal(), T0) == []
    assert tkinds(terminal(listed=False), T0) == ["terminal_missing"]
    (unknown,) = terminals.terminal_findings(terminal(expected=False), T0, TH)
    assert (unknown.kind, unknown.severity) == ("terminal_unknown", "info")
    (differs,) = terminals.terminal_findings(terminal(alias="Dor", area_code="S01"), T0, TH)
    assert differs.kind == "terminal_differs" and differs.detail["alias"] == "Door"
    assert tkinds(terminal(expected_alias=None, expected_area_code=None, alias="x"), T0) == []


def test_terminal_offline_only_past_the_threshold() -> None:
    """Last heard at T0: online for 10 min, offline but tolerated to 1 h, drift after."""
    row = terminal(last_activity=T0)
    assert tkinds(row, T0 + 10 * MIN) == []
    assert tkinds(row, T0 + 60 * MIN) == []
    assert tkinds(row, T0 + 61 * MIN) == ["terminal_offline"]


def test_job_failing_needs_n_failures_in_a_row() -> None:
    """Two failures, or three with a success among them, are not job_failing; three in a row are."""
    assert health.job_findings(health.JobRuns("j", ("failed", "failed")), TH) == []
    assert health.job_findings(health.JobRuns("j", ("failed", "ok", "failed")), TH) == []
    (found,) = health.job_findings(health.JobRuns("j", ("failed",) * 3, "boom"), TH)
    assert (found.kind, found.subject, found.detail) == ("job_failing", "j",
                                                         {"last_error": "boom"})


def test_subscription_lost_or_pointing_elsewhere() -> None:
    """Registered at the configured base: fine; failed or another base: subscription_lost."""
    base = "https://syncd.example.com/hooks/neolock/"
    ok = health.SubscriptionRow("neolock", "registered", base)
    assert health.subscription_findings(ok, base) == []
    assert health.subscription_findings(None, base) == []  # never registered yet: not a loss
    failed = health.SubscriptionRow("neolock", "failed", base, "HTTP 500")
    assert health.subscription_findings(failed, base)[0].actual == "failed"
    moved = health.SubscriptionRow("neolock", "registered", "https://old.example.com/hooks/neolock/")
    (found,) = health.subscription_findings(moved, base)
    assert found.kind == "subscription_lost" and found.actual is not None
    assert "old.example.com" in found.actual

"""Several `syncd run` processes on one PostgreSQL against slow, failing vendor simulators, a
PostgreSQL restart and a kill -9: each test asserts one invariant of the drill, judged from outside."""

from __future__ import annotations

import pytest

from tests.drills.conftest import selected
from tests.drills.scenario import Report

pytestmark = [pytest.mark.drill, pytest.mark.timeout(1500 if selected().name == "long" else 400)]


def held(report: Report, key: str) -> None:
    """Fail with the row's numbers and the drill's notes unless the row held."""
    row = report.row(key)
    if row.held is None:
        pytest.skip(f"{row.invariant}: {row.numbers}")
    notes = "".join(f"\n  note: {n}" for n in report.notes)
    assert row.held, f"{row.invariant}: {row.numbers}{notes}\n(logs: {report.logs})"


def test_every_acknowledged_push_is_stored_and_processed_once(drill: Report) -> None:
    """Pushes posted to every replica at once (one replica killed mid-burst, PostgreSQL restarted
    between bursts): each one some replica answered 200 is one inbox row, processed."""
    held(drill, "pushes")


def test_no_two_runs_of_one_job_overlap(drill: Report) -> None:
    """Across all replicas and the operator's `sync --once`, ops.sync_runs shows no job running
    twice at once (a killed replica's run counts as ended at the kill)."""
    held(drill, "overlap")


def test_every_alert_reaches_every_hook(drill: Report) -> None:
    """Every ops.outbox row reaches both hooks with a valid signature, although a hookless
    replica runs beside the ones with hooks; duplicates only around a kill or the restart."""
    held(drill, "alerts")


def test_no_run_is_left_running(drill: Report) -> None:
    """After the drill settles and the replicas stop, no run stays 'running': the killed
    replica's runs were closed by a live one, the stopped replicas closed their own."""
    held(drill, "running")


def test_status_and_readyz_say_up_while_replicas_live(drill: Report) -> None:
    """With replicas alive, each answers /readyz 200 and `syncd status` exits 0 or 1 (not 2/3)."""
    held(drill, "status-live")


def test_status_says_down_within_a_minute_of_the_last_kill(drill: Report) -> None:
    """Once the last replica is killed, `syncd status` exits 2 within a minute (long drill)."""
    held(drill, "status-down")


def test_codelocks_ledger_never_exceeds_the_quota(drill: Report) -> None:
    """Sampled every second: the vendor's billed calls ≤ the ledger's calls ≤ the quota."""
    held(drill, "ledger")


def test_codelocks_quota_refusal_is_not_retried_and_is_counted(drill: Report) -> None:
    """With the quota used up at the vendor, `sync k3-* --once` asks once per run in flight and
    report.api_usage.refused counts each refusal."""
    held(drill, "quota429")


def test_replicas_answer_readyz_and_registry_while_vendors_are_slow(drill: Report) -> None:
    """Vendors 1 s slow, 5xx bursts and 429 storms, pool of 4: /readyz and POST /v2/device on
    every live replica answer within 3 s, with no outage longer than 10 s (restart excepted)."""
    held(drill, "responsive")


def test_every_job_runs_while_vendors_are_slow(drill: Report) -> None:
    """Every scheduled job finishes at least one run during the drill (no stall)."""
    held(drill, "progress")

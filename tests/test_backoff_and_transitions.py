"""The one backoff policy (jittered, capped) and the one "log the transition once" helper."""

from __future__ import annotations

import random

import pytest
import structlog
from structlog.testing import capture_logs

from syncd.backoff import DATABASE_WAIT, INBOX_RETRY, Backoff
from syncd.transition import Transition


def test_inbox_retries_are_jittered_within_bounds_and_capped() -> None:
    """Inbox retry n waits between half and all of min(600, 2·2ⁿ) s: replicas that failed
    together spread out (no lock-step), a delay never collapses to ~0, and none exceeds 10 min."""
    rng = random.Random(7)
    for attempt in range(0, 40):
        top = min(600.0, 2.0 * 2 ** attempt)
        delays = [INBOX_RETRY.delay(attempt, rng) for _ in range(50)]
        assert all(top / 2 <= d <= top for d in delays)
        assert len(set(delays)) == 50  # fifty replicas, fifty different moments
    assert INBOX_RETRY.ceiling(100) == 600.0


def test_full_jitter_spans_zero_to_the_capped_ceiling() -> None:
    """floor 0 is full jitter: delays spread over [0, min(cap, base·2ⁿ)]."""
    policy = Backoff(base=0.5, cap=20.0)
    rng = random.Random(3)
    delays = [policy.delay(10, rng) for _ in range(500)]
    assert min(delays) < 2.0 and 18.0 < max(delays) <= 20.0
    assert DATABASE_WAIT.ceiling(0) == 0.25 and DATABASE_WAIT.ceiling(10) == 5.0


def test_a_nonsense_policy_is_refused() -> None:
    """Negative delays or a floor outside [0, 1] are programming errors."""
    for kwargs in ({"base": -1, "cap": 1}, {"base": 1, "cap": 2, "floor": 1.5}):
        with pytest.raises(ValueError, match="Backoff"):
            Backoff(**kwargs)


def test_a_failing_spell_is_logged_once_and_its_recovery_once_with_the_count() -> None:
    """Five failures log one warning; the recovery logs once with the four failures not logged;
    successes outside a spell log nothing."""
    log = structlog.get_logger("test")
    health = Transition(log, "thing.failing", "thing.recovered")
    with capture_logs() as logs:
        assert health.ok() is False
        results = [health.fail(error=f"e{i}") for i in range(5)]
        assert health.ok() is True
        assert health.ok() is False
    assert results == [True, False, False, False, False]
    assert logs == [
        {"event": "thing.failing", "error": "e0", "log_level": "warning"},
        {"event": "thing.recovered", "failures_not_logged": 4, "log_level": "info"},
    ]


def test_a_spell_already_known_to_be_failing_logs_no_second_start() -> None:
    """Started as failing (e.g. the previous run failed), a failure logs nothing and a success
    logs the recovery."""
    log = structlog.get_logger("test")
    with capture_logs() as logs:
        Transition(log, "a.failing", "a.recovered", already_failing=True).fail()
        Transition(log, "a.failing", "a.recovered", already_failing=True).ok()
    assert [e["event"] for e in logs] == ["a.recovered"]

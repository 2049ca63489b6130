"""The supervisor itself: crashed tasks restart with backoff, are logged once and counted; a task
that keeps dying is down until its crashes age out of the window; stopping forgets a task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from syncd.backoff import Backoff
from syncd.logs import REDACTED, Redactor
from syncd.metrics import Metrics
from syncd.supervisor import Supervisor

FAST = Backoff(base=0.001, cap=0.002, floor=0.5)


class Clock:
    """A monotonic clock the test moves by hand (the supervisor's window is measured on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing(times: int, error: Callable[[], Exception] = lambda: ValueError("boom")
            ) -> tuple[list[int], Callable[[], Awaitable[None]]]:
    """A task factory that raises on its first `times` runs, then runs until cancelled."""
    calls: list[int] = []

    async def task() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise error()
        await asyncio.Event().wait()

    return calls, task


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `condition` with a deadline (no fixed sleeps as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


def sample(metrics: Metrics, name: str, task: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"task": task})


async def test_a_crashed_task_restarts_logged_once_with_its_trace_and_counted() -> None:
    """Two crashes with the same error: restarted each time, one `task.crashed` line carrying the
    traceback, two restarts counted; below the limit the task stays up."""
    metrics = Metrics()
    supervisor = Supervisor(metrics, restart_limit=3, window=60.0, backoff=FAST)
    calls, factory = failing(2)
    with capture_logs() as logs:
        handle = supervisor.start("worker", factory)
        await until(lambda: len(calls) == 3)
    try:
        health = supervisor.health()["worker"]
        assert (health.up, health.running, health.restarts) == (True, True, 2)
        assert health.last_error == "ValueError: boom"
        crashed = [line for line in logs if line["event"] == "task.crashed"]
        assert len(crashed) == 1 and isinstance(crashed[0]["exc_info"], ValueError)
        assert sample(metrics, "syncd_task_restarts_total", "worker") == 2
        assert sample(metrics, "syncd_task_up", "worker") == 1
        assert supervisor.down() == {}
    finally:
        await handle.stop()


async def test_a_task_that_keeps_dying_is_down_until_its_crashes_age_out() -> None:
    """`restart_limit` crashes within the window: down (gauge 0, down() names it with the last
    error, one `task.down` line); once the crashes are older than the window it is up again."""
    metrics = Metrics()
    clock = Clock()
    supervisor = Supervisor(metrics, restart_limit=3, window=60.0, backoff=FAST, clock=clock)
    calls, factory = failing(3, lambda: KeyError("lost"))
    with capture_logs() as logs:
        handle = supervisor.start("deliverer", factory)
        await until(lambda: len(calls) == 4)  # crashed three times, running the fourth
        try:
            assert supervisor.down() == {"deliverer": "3 restarts in 60s, last: KeyError: 'lost'"}
            assert sample(metrics, "syncd_task_up", "deliverer") == 0
            assert supervisor.snapshot()["deliverer"]["up"] is False
            clock.now += 61
            assert supervisor.down() == {}
            assert sample(metrics, "syncd_task_up", "deliverer") == 1
        finally:
            await handle.stop()
    events = [line["event"] for line in logs]
    assert events.count("task.down") == 1 and events.count("task.recovered") == 1


async def test_a_changed_error_is_logged_again_and_secrets_are_scrubbed() -> None:
    """A different error in the same spell gets its own trace; last_error carries no secret."""
    redactor = Redactor(["tok-3f9a-very-secret"])
    supervisor = Supervisor(scrub=redactor.scrub, restart_limit=5, backoff=FAST)
    errors = iter([ValueError("first"), RuntimeError("token tok-3f9a-very-secret refused")])
    calls, factory = failing(2, lambda: next(errors))
    with capture_logs() as logs:
        handle = supervisor.start("inbox", factory)
        await until(lambda: len(calls) == 3)
    await handle.stop()
    assert [line["error"] for line in logs if line["event"] == "task.crashed"] == [
        "ValueError: first", f"RuntimeError: token {REDACTED} refused"]


async def test_a_task_that_returns_is_restarted() -> None:
    """A background task is meant to run until cancelled: returning counts as a crash."""
    supervisor = Supervisor(backoff=FAST)
    runs: list[int] = []

    async def returns_twice() -> None:
        runs.append(1)
        if len(runs) > 2:
            await asyncio.Event().wait()

    handle = supervisor.start("scheduler", returns_twice)
    await until(lambda: len(runs) == 3)
    assert supervisor.health()["scheduler"].restarts == 2
    assert "returned" in (supervisor.health()["scheduler"].last_error or "")
    await handle.stop()


async def test_stop_cancels_the_task_and_forgets_it() -> None:
    """A task stopped on purpose is cancelled, no longer reported, and its gauge series is gone;
    its name can be supervised again, but not twice at once."""
    metrics = Metrics()
    supervisor = Supervisor(metrics, backoff=FAST)
    calls, factory = failing(0)
    handle = supervisor.start("heartbeat", factory)
    await until(lambda: len(calls) == 1)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("heartbeat", factory)
    await handle.stop()
    assert handle.task.cancelled()
    assert supervisor.health() == {}
    assert sample(metrics, "syncd_task_up", "heartbeat") is None
    again = supervisor.start("heartbeat", factory)
    await supervisor.close()
    assert again.task.cancelled()

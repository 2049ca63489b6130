"""One supervisor for every background task (alert deliverer, inbox worker, scheduler, watchdog,
heartbeat). Shared below every package.

A task is a coroutine meant to run until cancelled. When it raises (or returns), the supervisor
logs the exception with its traceback once — again only when the error changes — counts it
(`syncd_task_restarts_total`), and starts the task again after the one backoff policy's delay.
A task that crashed `restart_limit` times within `window` seconds is *down*: `syncd_task_up` says
0, readiness fails naming it, and the heartbeat carries it to `syncd status`. It is still
restarted (capped backoff): once it has not crashed for `window` seconds it is up again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from syncd.backoff import TASK_RESTART, Backoff
from syncd.metrics import Metrics
from syncd.transition import Transition

log = structlog.get_logger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


@dataclasses.dataclass
class TaskHealth:
    """One supervised task's health, as readiness, metrics and the heartbeat row show it."""

    name: str
    up: bool = True
    running: bool = False
    restarts: int = 0  # since the process started
    last_error: str | None = None  # scrubbed of secrets
    last_error_at: dt.datetime | None = None
    crashes: collections.deque[float] = dataclasses.field(default_factory=collections.deque)

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ops.replicas.tasks and served by /api/v1/status."""
        return {"up": self.up, "restarts": self.restarts, "last_error": self.last_error,
                "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None}


class Supervised:
    """A handle on one supervised task: its owner stops it when its resource closes."""

    def __init__(self, supervisor: Supervisor, name: str, task: asyncio.Task[None]) -> None:
        self.supervisor = supervisor
        self.name = name
        self.task = task

    async def stop(self) -> None:
        """Cancel the task, wait for it, and stop reporting its health."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.supervisor.forget(self.name, self.task)


class Supervisor:
    """Runs background tasks, restarting each with backoff when it crashes (module docstring)."""

    def __init__(self, metrics: Metrics | None = None, *,
                 scrub: Callable[[str], str] = lambda s: s, restart_limit: int = 5,
                 window: float = 300.0, backoff: Backoff = TASK_RESTART,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.scrub = scrub
        self.restart_limit = restart_limit
        self.window = window
        self.backoff = backoff
        self.clock = clock
        self._health: dict[str, TaskHealth] = {}
        self._down: dict[str, Transition] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: TaskFactory) -> Supervised:
        """Run `factory()` as the task `name`, restarted whenever it crashes."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._health[name] = TaskHealth(name)
        self._down[name] = Transition(log, "task.down", "task.recovered", level="error")
        self._set_gauge(name, up=True)
        task = asyncio.create_task(self._keep(name, factory), name=name)
        self._tasks[name] = task
        return Supervised(self, name, task)

    def forget(self, name: str, task: asyncio.Task[None]) -> None:
        """Stop reporting a task that was stopped on purpose."""
        if self._tasks.get(name) is task:
            del self._tasks[name], self._health[name], self._down[name]
            if self.metrics is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.task_up.remove(name)

    async def close(self) -> None:
        """Stop every task still running."""
        for name, task in list(self._tasks.items()):
            await Supervised(self, name, task).stop()

    def health(self) -> dict[str, TaskHealth]:
        """Each task's health now (a task's crashes older than the window are forgotten)."""
        for name in self._health:
            self._judge(name)
        return dict(self._health)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each task's health as JSON (for the heartbeat row)."""
        return {name: health.as_json() for name, health in sorted(self.health().items())}

    def down(self) -> dict[str, str]:
        """The tasks that keep dying, each with why (for readiness and status)."""
        return {name: self.describe(h) for name, h in self.health().items() if not h.up}

    def describe(self, health: TaskHealth) -> str:
        """Why a task is down, in one line."""
        return (f"{len(health.crashes)} restarts in {self.window:g}s, last: "
                f"{health.last_error or 'unknown'}")

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        health = self._health[name]
        attempt = 0
        while True:
            health.running = True
            started = self.clock()
            try:
                await factory()
                error: BaseException = RuntimeError("the task returned; it should run until "
                                                    "cancelled")
                trace = False
            except Exception as err:  # a supervisor catches what its task did not
                error, trace = err, True
            health.running = False
            if self.clock() - started >= self.window:
                attempt = 0  # it ran well for a while: start the backoff over
            self._crashed(health, error, trace)
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1

    def _crashed(self, health: TaskHealth, error: BaseException, trace: bool) -> None:
        now = self.clock()
        self._prune(health, now)
        text = self.scrub(f"{type(error).__name__}: {error}")[:500]
        # Log the trace once per spell of crashes, and again only when the error changes.
        new_spell = not health.crashes
        if new_spell or text != health.last_error:
            log.error("task.crashed", task=health.name, restarts=health.restarts + 1, error=text,
                      exc_info=error if trace else None)
        else:
            log.debug("task.crashed_again", task=health.name, restarts=health.restarts + 1)
        health.crashes.append(now)
        health.restarts += 1
        health.last_error = text
        health.last_error_at = dt.datetime.now(dt.UTC)
        if self.metrics is not None:
            self.metrics.task_restarts.labels(task=health.name).inc()
        self._judge(health.name)

    def _prune(self, health: TaskHealth, now: float) -> None:
        while health.crashes and now - health.crashes[0] > self.window:
            health.crashes.popleft()

    def _judge(self, name: str) -> None:
        """Decide up or down from the crashes within the window; log and export the change."""
        health = self._health[name]
        self._prune(health, self.clock())
        up = len(health.crashes) < self.restart_limit
        if up != health.up:
            health.up = up
            if up:
                self._down[name].ok(task=name)
            else:
                self._down[name].fail(task=name, reason=self.describe(health))
            self._set_gauge(name, up=up)

    def _set_gauge(self, name: str, *, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.task_up.labels(task=name).set(1 if up else 0)

"""A minimal progress bar for `syncd sync` on a terminal (stderr), silent otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class ProgressBar:
    """Redraws one line on a terminal as a job reports progress; does nothing when disabled."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None,
                 width: int = 30) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0

    def update(self, done: int, total: int | None) -> None:
        """Show `done` of `total` (a spinner-like count when total is unknown), at most 10×/s."""
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        if total:
            filled = min(self.width, int(self.width * done / total))
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r{self.label} [{bar}] {done}/{total}"
        else:
            text = f"\r{self.label} {done} items"
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.enabled and self._last:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

"""A progress line for `syncd sync` on a terminal, with log lines kept above it.

A few lines of our own rather than rich: syncd needs one bar, a rate and an ETA, and log lines
that do not overwrite it; rich's Live display would also take over structlog's console output.
`Terminal` wraps stderr: the CLI hands it to structlog as the log stream, so every log line
clears the bar, is written whole, and the bar is redrawn under it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TextIO

_CLEAR = "\r\x1b[K"


class Bar:
    """One job's progress: `update(done, total)` as the job reports it."""

    def __init__(self, terminal: Terminal, label: str, width: int = 24) -> None:
        self.terminal = terminal
        self.label = label
        self.width = width
        self.started = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self._drawn_at = 0.0

    def update(self, done: int, total: int | None) -> None:
        """Record progress; redraw at most ten times a second."""
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self.terminal.redraw()

    def render(self, now: float | None = None) -> str:
        """The bar as text: label, bar (when the total is known), count, rate and ETA."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        rate = self.done / elapsed
        text = self.label
        if self.total:
            filled = min(self.width, int(self.width * self.done / self.total))
            text += f" [{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total}"
        else:
            text += f" {self.done} items"
        text += f" {rate:.1f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f" ETA {_duration((self.total - self.done) / rate)}"
        return text


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Terminal:
    """A text stream over stderr that keeps at most one progress bar on its last line.

    Writes are buffered to whole lines; each line clears the bar, is written, and the bar is
    drawn again below it. With a stream that is not a terminal, no bar is ever drawn.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.bar: Bar | None = None
        self._pending = ""
        self._shown = False

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal (the log renderer asks)."""
        return self.enabled

    def write(self, text: str) -> int:
        """Write text; complete lines go out at once, above the bar."""
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._hide()
            self.stream.write(lines + "\n")
            self._show()
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.stream.flush()

    def redraw(self) -> None:
        """Draw the current bar again (after progress)."""
        self._hide()
        self._show()
        self.stream.flush()

    @contextlib.contextmanager
    def task(self, label: str) -> Iterator[Bar]:
        """Show a bar for one job while the block runs; clear it at the end."""
        self.bar = Bar(self, label)
        try:
            yield self.bar
        finally:
            self._hide()
            self.stream.flush()
            self.bar = None

    def _hide(self) -> None:
        if self._shown:
            self.stream.write(_CLEAR)
            self._shown = False

    def _show(self) -> None:
        if self.enabled and self.bar is not None:
            self.stream.write("\r" + self.bar.render())
            self._shown = True

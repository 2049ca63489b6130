"""The `syncd sync` progress bar: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from syncd.progress import ProgressBar


def test_progress_bar_draws_and_clears_when_enabled() -> None:
    """With a terminal, progress redraws one line showing done/total, cleared at the end."""
    out = io.StringIO()
    with ProgressBar("neolock-devices", enabled=True, stream=out) as bar:
        bar.update(50, 100)
    text = out.getvalue()
    assert "\rneolock-devices [###############---------------] 50/100" in text
    assert text.endswith("\r\x1b[K")


def test_progress_bar_without_total_counts_items() -> None:
    """Without a known total it shows a running count."""
    out = io.StringIO()
    ProgressBar("neolock-uploads", enabled=True, stream=out).update(7, None)
    assert out.getvalue() == "\rneolock-uploads 7 items"


def test_progress_bar_is_silent_when_not_a_terminal() -> None:
    """Piped output (CI, cron) gets no control characters."""
    out = io.StringIO()
    with ProgressBar("x", enabled=False, stream=out) as bar:
        bar.update(1, 2)
    assert out.getvalue() == ""

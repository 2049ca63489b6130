"""The `syncd sync` progress bar: rate and ETA, log lines kept above it, silent off a terminal."""

from __future__ import annotations

import io

from syncd.cli.progress import Bar, Terminal


class FakeTty(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_bar_shows_count_rate_and_eta() -> None:
    """With a known total the bar shows done/total, items per second and the time left."""
    terminal = Terminal(FakeTty())
    bar = Bar(terminal, "neolock-devices", width=10)
    bar.done, bar.total = 50, 100
    text = bar.render(now=bar.started + 10)
    assert text == "neolock-devices [#####-----] 50/100 5.0/s ETA 10s"


def test_bar_without_total_counts_items_and_rate() -> None:
    """Without a known total it shows a running count and the rate, no ETA."""
    bar = Bar(Terminal(FakeTty()), "neolock-uploads")
    bar.done = 7
    assert bar.render(now=bar.started + 2) == "neolock-uploads 7 items 3.5/s"


def test_log_lines_are_written_above_the_bar_which_is_redrawn() -> None:
    """A log line written while a bar is shown clears the bar, appears whole, and the bar returns."""
    out = FakeTty()
    terminal = Terminal(out)
    with terminal.task("biotime-terminals") as bar:
        bar.update(1, 4)
        before = out.getvalue()
        assert before.startswith("\rbiotime-terminals [")
        terminal.write("job.run status=ok")  # structlog writes the line, then the newline
        assert out.getvalue() == before  # a partial line waits
        terminal.write("\n")
        after = out.getvalue()[len(before):]
        assert after.startswith("\r\x1b[Kjob.run status=ok\n\rbiotime-terminals [")
    assert out.getvalue().endswith("\r\x1b[K")  # the bar is cleared when the job finishes


def test_nothing_but_log_lines_when_not_a_terminal() -> None:
    """Piped stderr (CI, cron) gets the log lines and no control characters."""
    out = io.StringIO()
    terminal = Terminal(out)
    with terminal.task("x") as bar:
        bar.update(1, 2)
        terminal.write("a log line\n")
    assert out.getvalue() == "a log line\n"

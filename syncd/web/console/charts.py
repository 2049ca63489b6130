"""Server-side SVG charts: readable without JavaScript, with axis labels and units.

Each chart is a function of its data returning SVG markup. Text is escaped here; colours come
from classes styled by the console's CSS file (no inline style: the CSP forbids it). Every data
point is an element of class `pt` with a `<title>` (the browser shows it on hover), so a test
can count the points and a person can read each value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from syncd.db.console import RunPoint

# Room for the axes' tick labels and titles around the plot area.
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 10, 34


def nice_ticks(top: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """Round tick values from 0 up to at least `top` (1, 2 or 5 times a power of ten apart;
    `whole`: at least 1 apart, for counts)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(step, 1)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def number(value: float) -> str:
    """A tick label: no needless decimals, thousands as k."""
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.3g}"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A plot area inside a width × height SVG, mapping data to pixels."""

    width: int
    height: int
    x_lo: float
    x_hi: float
    y_hi: float

    def x(self, value: float) -> float:
        """The pixel x of a data x."""
        span = (self.x_hi - self.x_lo) or 1.0
        return round(LEFT + (value - self.x_lo) / span * (self.width - LEFT - RIGHT), 1)

    def y(self, value: float) -> float:
        """The pixel y of a data y."""
        return round(self.height - BOTTOM - value / (self.y_hi or 1.0)
                     * (self.height - TOP - BOTTOM), 1)


def _svg(frame: Frame, label: str, parts: list[str]) -> Markup:
    # Safe: every text that went into `parts` was escaped where it was interpolated.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(parts)}</svg>")


def _axes(frame: Frame, ticks: Sequence[float], y_title: str, x_title: str,
          x_ticks: Sequence[tuple[float, str]]) -> list[str]:
    """Grid lines with y tick labels, x tick labels, both axis titles."""
    bottom = frame.height - BOTTOM
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{frame.width - RIGHT}" '
                     f'y2="{y}"/><text class="tick" x="{LEFT - 4}" y="{y + 3}" '
                     f'text-anchor="end">{escape(number(tick))}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{frame.width - RIGHT}" '
                 f'y2="{bottom}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" '
                 f'y2="{bottom}"/>')
    for value, text in x_ticks:
        parts.append(f'<text class="tick" x="{frame.x(value)}" y="{bottom + 12}" '
                     f'text-anchor="middle">{escape(text)}</text>')
    parts.append(f'<text class="axis-title" x="{(LEFT + frame.width - RIGHT) / 2}" '
                 f'y="{frame.height - 3}" text-anchor="middle">{escape(x_title)}</text>'
                 f'<text class="axis-title" x="11" y="{(TOP + bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 11 {(TOP + bottom) / 2})">{escape(y_title)}</text>')
    return parts


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_chart(job: str, runs: Sequence[RunPoint]) -> Markup:
    """A job's run durations (seconds), oldest to newest; one point per run, failed ones marked."""
    frame = Frame(300, 120, 1, max(len(runs), 2), 0)
    ticks = nice_ticks(max((r.seconds for r in runs), default=0.0), 3)
    frame = dataclasses.replace(frame, y_hi=ticks[-1])
    x_ticks = [(1.0, "1")] + ([(float(len(runs)), str(len(runs)))] if len(runs) > 1 else [])
    parts = _axes(frame, ticks, "seconds", f"run (oldest → newest, last {len(runs)})", x_ticks)
    coords = [(frame.x(i), frame.y(r.seconds)) for i, r in enumerate(runs, start=1)]
    if len(coords) > 1:
        parts.append('<polyline class="line" points="'
                     + " ".join(f"{x},{y}" for x, y in coords) + '"/>')
    for (x, y), run in zip(coords, runs, strict=True):
        parts.append(
            f'<circle class="pt {escape(run.status)}" cx="{x}" cy="{y}" r="3">'
            f"<title>{escape(_when(run.started_at))}: {run.seconds:.2f} s, {escape(run.status)}, "
            f"{run.items} items, {run.requests} requests</title></circle>")
    return _svg(frame, f"{job}: duration of its last {len(runs)} runs, in seconds", parts)


@dataclasses.dataclass(frozen=True)
class Burn:
    """What the quota burn chart shows for one category over one period."""

    category: str
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    quota: int
    reserve: int
    calls_now: int
    used: Sequence[tuple[dt.datetime, int]]  # (when, calls used by then), oldest first
    projected_at_pace: int
    projected_as_planned: int


def burn_chart(burn: Burn) -> Markup:
    """Calls used over the quota period against the budget, with both projections to its end."""
    days = (burn.end - burn.start).total_seconds() / 86400

    def day(when: dt.datetime) -> float:
        return (when - burn.start).total_seconds() / 86400

    top = max(burn.quota, burn.calls_now, burn.projected_at_pace, burn.projected_as_planned, 1)
    ticks = nice_ticks(top, 4, whole=True)
    frame = Frame(960, 320, 0, days, ticks[-1])
    x_ticks = [(float(d), str(d + 1)) for d in range(0, int(days), 5)]
    parts = _axes(frame, ticks, "calls", f"day of the period ({burn.start:%Y-%m}, "
                  f"{burn.start.tzname() or 'UTC'})", x_ticks)
    x0, x1 = frame.x(0), frame.x(days)
    parts.append(f'<line class="budget" x1="{x0}" y1="{frame.y(burn.quota)}" x2="{x1}" '
                 f'y2="{frame.y(burn.quota)}"><title>budget: {burn.quota} calls</title></line>'
                 f'<text class="label budget-label" x="{x1 - 4}" y="{frame.y(burn.quota) + 13}" '
                 f'text-anchor="end">budget {burn.quota}</text>')
    if burn.reserve:
        jobs_budget = burn.quota - burn.reserve
        parts.append(f'<line class="reserve" x1="{x0}" y1="{frame.y(jobs_budget)}" x2="{x1}" '
                     f'y2="{frame.y(jobs_budget)}"><title>for scheduled jobs: {jobs_budget} calls '
                     f'(reserve {burn.reserve} kept for operators)</title></line>'
                     f'<text class="label" x="{x1 - 4}" y="{frame.y(jobs_budget) + 13}" '
                     f'text-anchor="end">for jobs {jobs_budget}</text>')
    now_x = day(burn.now)
    steps = [(0.0, 0)] + [(day(when), calls) for when, calls in burn.used] + \
        [(now_x, burn.calls_now)]
    parts.append('<polyline class="line used" points="'
                 + " ".join(f"{frame.x(d)},{frame.y(c)}" for d, c in steps) + '"/>')
    for when, calls in burn.used:
        parts.append(f'<circle class="pt" cx="{frame.x(day(when))}" cy="{frame.y(calls)}" r="2.5">'
                     f"<title>{escape(_when(when))}: {calls} calls used</title></circle>")
    for css, value, name in (("pace", burn.projected_at_pace, "at this pace"),
                             ("planned", burn.projected_as_planned, "as planned")):
        parts.append(f'<line class="projection {css}" x1="{frame.x(now_x)}" '
                     f'y1="{frame.y(burn.calls_now)}" x2="{x1}" y2="{frame.y(value)}">'
                     f"<title>projected {name}: {value} calls by the period's end</title></line>")
    label_y = max(frame.y(burn.calls_now) - 8, TOP + 24)
    parts.append(f'<line class="now" x1="{frame.x(now_x)}" y1="{TOP}" x2="{frame.x(now_x)}" '
                 f'y2="{frame.height - BOTTOM}"/><text class="label" x="{frame.x(now_x) + 4}" '
                 f'y="{label_y}">now: {burn.calls_now} used</text>')
    return _svg(frame, f"Codelocks {burn.category} calls used this period against the budget "
                f"of {burn.quota}, with projections", parts)


def bar_chart(label: str, bars: Sequence[tuple[str, int]], *, y_title: str, x_title: str,
              every: int = 1) -> Markup:
    """Vertical bars, one per (x label, value); every `every`-th x label is written."""
    ticks = nice_ticks(max((v for _, v in bars), default=0), 4, whole=True)
    frame = Frame(960, 220, 0, max(len(bars), 1), ticks[-1])
    slot = (frame.width - LEFT - RIGHT) / max(len(bars), 1)
    x_ticks = [(i + 0.5, name) for i, (name, _) in enumerate(bars) if i % every == 0]
    parts = _axes(frame, ticks, y_title, x_title, x_ticks)
    for i, (name, value) in enumerate(bars):
        top = frame.y(value)
        parts.append(f'<rect class="pt bar" x="{round(frame.x(i) + slot * 0.15, 1)}" y="{top}" '
                     f'width="{round(slot * 0.7, 1)}" height="{round(frame.y(0) - top, 1)}">'
                     f"<title>{escape(name)}: {value}</title></rect>")
    return _svg(frame, label, parts)


def hbar_chart(label: str, bars: Sequence[tuple[str, int, str]], *, unit: str) -> Markup:
    """Horizontal bars, one per (name, value, css class), with the value written at its end."""
    width, row = 760, 22
    height = TOP + row * max(len(bars), 1) + BOTTOM
    ticks = nice_ticks(max((v for _, v, _ in bars), default=0), 4, whole=True)
    left = 130
    span = width - left - RIGHT - 30

    def x(value: float) -> float:
        return round(left + value / (ticks[-1] or 1) * span, 1)

    parts = []
    for tick in ticks:
        parts.append(f'<line class="grid" x1="{x(tick)}" y1="{TOP}" x2="{x(tick)}" '
                     f'y2="{height - BOTTOM}"/><text class="tick" x="{x(tick)}" '
                     f'y="{height - BOTTOM + 12}" text-anchor="middle">{escape(number(tick))}</text>')
    for i, (name, value, css) in enumerate(bars):
        y = TOP + i * row
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 15}" text-anchor="end">'
                     f"{escape(name)}</text>"
                     f'<rect class="pt bar {escape(css)}" x="{left}" y="{y + 4}" '
                     f'width="{round(x(value) - left, 1)}" height="{row - 8}">'
                     f"<title>{escape(name)}: {value} {escape(unit)}</title></rect>"
                     f'<text class="label" x="{x(value) + 4}" y="{y + 15}">{value}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{TOP}" x2="{left}" y2="{height - BOTTOM}"/>'
                 f'<text class="axis-title" x="{left + span / 2}" y="{height - 3}" '
                 f'text-anchor="middle">{escape(unit)}</text>')
    return _svg(Frame(width, height, 0, 1, 1), label, parts)

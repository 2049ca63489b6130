"""Plain-text tables whose cells wrap at word boundaries instead of being cut.

A column is as wide as its widest cell, or, when it has a cap, as its cap, but never narrower
than its longest word: a long value takes more lines, and no word is ever split or truncated.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Column:
    """A column's heading, its widest width before cells wrap (None: never wraps), alignment."""

    heading: str
    cap: int | None = None
    right: bool = False


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[str]:
    """The heading line and each row's lines (a wrapped row continues on the lines below)."""
    widths = []
    for i, column in enumerate(columns):
        cells = [row[i] for row in rows]
        widest = max([len(column.heading), *(len(c) for c in cells)])
        longest_word = max([0, *(len(w) for c in cells for w in c.split())])
        widths.append(widest if column.cap is None else max(min(widest, column.cap),
                                                             longest_word, len(column.heading)))
    lines = [_line(columns, widths, [c.heading for c in columns])]
    for row in rows:
        wrapped = [_wrap(text, width) for text, width in zip(row, widths, strict=True)]
        for n in range(max(len(c) for c in wrapped)):
            lines.append(_line(columns, widths, [c[n] if n < len(c) else "" for c in wrapped]))
    return lines


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _line(columns: Sequence[Column], widths: Sequence[int], cells: Sequence[str]) -> str:
    parts = [cell.rjust(width) if column.right else cell.ljust(width)
             for column, width, cell in zip(columns, widths, cells, strict=True)]
    return " ".join(parts).rstrip()

"""Asking before an action that is hard to undo: on a terminal only; a script passes --yes."""

from __future__ import annotations

import sys


def confirm(question: str) -> bool:
    """Ask `question` [y/N] on the terminal; False when stdin is not a terminal or on EOF."""
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")

"""One way to confirm an action that is hard to undo: `--yes`, or "y" typed on a terminal.

Without a terminal (cron, a pipe, CI) and without `--yes`, the command refuses in one line on
stderr and exits 1 having sent nothing: a script must say `--yes` to mean it. The question goes
to stderr (stdout is for data) and the answer is read without blocking the event loop, so a
command may ask while it holds the database, and Ctrl-C or SIGTERM still stop it at once.
"""

from __future__ import annotations

import asyncio
import sys

YES = ("y", "yes")


def unaskable(yes: bool, refusal: str) -> bool:
    """True (after printing why) when confirmation is needed but there is no terminal to ask on.

    `refusal` says what was not done, e.g. "syncd phones lock: nothing sent".
    """
    if yes or sys.stdin.isatty():
        return False
    print(f"{refusal}: no terminal to confirm on (pass --yes)", file=sys.stderr)
    return True


async def confirmed(question: str, *, yes: bool, refusal: str) -> bool:
    """True to go ahead: `yes` (--yes was given), or "y"/"yes" typed on a terminal.

    Otherwise one line on stderr, starting with `refusal`, and False.
    """
    if yes:
        return True
    if unaskable(yes, refusal):
        return False
    answer = await _ask(f"{question} [y/N] ")
    if answer.strip().lower() in YES:
        return True
    print(f"{refusal} (not confirmed)", file=sys.stderr)
    return False


async def _ask(prompt: str) -> str:
    """The line typed after `prompt` ("" at end of input)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    loop = asyncio.get_running_loop()
    typed: asyncio.Future[None] = loop.create_future()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not typed.done():
            typed.set_result(None)

    # A terminal in canonical mode is readable once a whole line (or end of input) is there.
    loop.add_reader(fd, readable)
    try:
        await typed
    finally:
        loop.remove_reader(fd)
    return sys.stdin.readline()

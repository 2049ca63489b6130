"""Commands to BioTime attendance terminals, by serial number, each recorded in ops.terminal_commands.

Used by `syncd terminals …` and available to remediation code. A serial number is resolved to
BioTime's id through vendor.terminals (what the last complete listing said), so a terminal the
vendor no longer lists is refused without a call. Each terminal gets its own call, so one refusal
does not sink the others; the ledger row is written as 'pending' before the call and finished
after it, so a crash in between leaves a trace rather than nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence

from syncd.db import biotime as queries
from syncd.db.pool import Database
from syncd.errors import VendorError
from syncd.vendors.biotime import BioTimeClient, CommandResult


class TerminalCommand(enum.StrEnum):
    """The terminal commands syncd sends (the destructive clear_all/clear_capture are left out)."""

    REBOOT = "reboot"
    UPLOAD_TRANSACTION = "upload_transaction"
    UPLOAD_ALL = "upload_all"
    CLEAR_COMMAND = "clear_command"


@dataclasses.dataclass(frozen=True)
class CommandOutcome:
    """How one command to one terminal ended, and its ledger row."""

    ledger_id: int
    sn: str
    terminal_id: int | None
    command: TerminalCommand
    ok: bool
    error: str | None = None


async def _call(client: BioTimeClient, command: TerminalCommand, terminal_id: int) -> CommandResult:
    if command is TerminalCommand.REBOOT:
        return await client.reboot([terminal_id])
    if command is TerminalCommand.UPLOAD_TRANSACTION:
        return await client.upload_transaction([terminal_id])
    if command is TerminalCommand.UPLOAD_ALL:
        return await client.upload_all([terminal_id])
    return await client.clear_command([terminal_id])


async def send_command(db: Database, client: BioTimeClient, command: TerminalCommand,
                       sns: Sequence[str], *, requested_by: str,
                       scrub: Callable[[str], str] = lambda s: s) -> list[CommandOutcome]:
    """Send `command` to each terminal named by serial number; record and return every outcome."""
    wanted = list(dict.fromkeys(sn.strip() for sn in sns if sn.strip()))
    ids = await queries.terminal_ids(db, wanted)
    outcomes: list[CommandOutcome] = []
    for sn in wanted:
        terminal_id = ids.get(sn)
        ledger_id = await queries.command_started(db, sn, terminal_id, command.value, requested_by)
        error: str | None = None
        if terminal_id is None:
            error = ("not a terminal the BioTime server lists (as of the last biotime-terminals "
                     "sync)")
        else:
            try:
                result = await _call(client, command, terminal_id)
                if not result.ok:
                    error = f"refused: code {result.code}: {result.msg or 'no message'}"
            except VendorError as err:
                error = scrub(str(err))
            except ValueError as err:  # an id the client will not send (e.g. 0)
                error = scrub(str(err))
        await queries.command_finished(db, ledger_id, error is None, error)
        outcomes.append(CommandOutcome(ledger_id, sn, terminal_id, command, error is None, error))
    return outcomes

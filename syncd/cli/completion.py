"""`syncd completion bash|zsh`: a completion script generated from the argument parser by shtab.

Generated rather than hand-written, so a subcommand added by any `syncd/cli/` module completes
without anyone editing a script; static, so a TAB press runs no Python (argcomplete would import
syncd on every one).
"""

from __future__ import annotations

import argparse
import shlex

from syncd.cli.help import SubParsers, add_command


def add_parser(sub: SubParsers[argparse.ArgumentParser]) -> None:
    """Add `completion bash` to the CLI."""
    p = add_command(sub, "completion", "print a shell completion script",
                    "syncd completion bash > /etc/bash_completion.d/syncd",
                    "syncd completion zsh > \"${fpath[1]}/_syncd\"")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=completion, needs_config=False)


def script(parser: argparse.ArgumentParser, shell: str, jobs: list[str]) -> str:
    """The completion script of `parser` for `shell`, with `jobs` offered after `sync`."""
    import shtab  # only this command needs it

    words = " ".join(jobs)
    for action in _sync_parser(parser)._actions:
        if action.dest == "jobs":
            action.complete = {  # type: ignore[attr-defined]  # shtab's extension point
                "bash": "_syncd_jobs", "zsh": f"({words})",
                "preamble": {"bash": f"_syncd_jobs() {{\n  compgen -W {shlex.quote(words)} -- \"$1\"\n}}\n"},
            }
    return str(shtab.complete(parser, shell=shell)).rstrip("\n") + "\n"


def _sync_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["sync"]  # type: ignore[no-any-return]
    raise LookupError("the CLI has no `sync` command")


async def completion(args: argparse.Namespace, settings: object, redactor: object) -> int:
    """Print the completion script for the requested shell (of the parser main() used)."""
    from syncd.jobs import catalog

    print(script(args.parser, args.shell, ["all", *catalog.built()]), end="")
    return 0

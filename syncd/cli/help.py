"""Subcommand parsers with an example in their --help, shared by every `cli_<area>` module."""

from __future__ import annotations

import argparse

SubParsers = argparse._SubParsersAction  # argparse keeps its subparsers type private


def example(*lines: str) -> str:
    """An epilog with example command lines."""
    return "examples:\n  " + "\n  ".join(lines)


def add_command(sub: SubParsers[argparse.ArgumentParser], name: str, help: str,
                *examples: str) -> argparse.ArgumentParser:
    """A subcommand parser whose --help describes it and ends with examples."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                          epilog=example(*examples) if examples else None,
                          formatter_class=argparse.RawDescriptionHelpFormatter)

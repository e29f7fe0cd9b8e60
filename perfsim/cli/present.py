"""What every command shares at the edge: its result rendered as --format asks, warnings and written files.

Lines for stderr (warnings, and the files written when stdout carries JSON or CSV) are kept in
`args.messages` and printed by main() once the command has succeeded, so that a user mistake stays one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from perfsim.output import render, table_width


def shown(data: dict | list[dict], args: argparse.Namespace) -> str:
    """`data` rendered as --format asks; a table as wide as the terminal unless --wide."""
    return render(data, args.format, table_width(getattr(args, "wide", False)))


def warn(args: argparse.Namespace, notes: Iterable[str]) -> None:
    """Each note as one `perfsim: warning:` line on stderr, once the command succeeds."""
    _stderr(args, [f"perfsim: warning: {note}" for note in notes])


def _stderr(args: argparse.Namespace, lines: list[str]) -> None:
    args.messages = [*getattr(args, "messages", []), *lines]


def wrote(text: str, args: argparse.Namespace, paths: list[Path]) -> str:
    """`text` with a last line naming the files written; for json or csv that line goes to stderr instead, so
    that stdout stays machine-readable."""
    line = f"wrote {_names(paths)}"
    if args.format == "table":
        return f"{text}\n{line}" if text else line
    _stderr(args, [f"perfsim: {line}"])
    return text


def _names(paths: list[Path]) -> str:
    names = [str(path) for path in paths]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

"""What every command shares at the edge: its result rendered as --format asks, warnings and written files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from perfsim.output import render, table_width


def shown(data: dict | list[dict], args: argparse.Namespace) -> str:
    """`data` rendered as --format asks; a table as wide as the terminal unless --wide."""
    return render(data, args.format, table_width(getattr(args, "wide", False)))


def warn(notes: Iterable[str]) -> None:
    """Each note as one `perfsim: warning:` line on stderr."""
    for note in notes:
        print(f"perfsim: warning: {note}", file=sys.stderr)


def wrote(text: str, args: argparse.Namespace, paths: list[Path]) -> str:
    """`text` with a last line naming the files written; for json or csv that line goes to stderr instead, so
    that stdout stays machine-readable."""
    line = f"wrote {_names(paths)}"
    if args.format == "table":
        return f"{text}\n{line}" if text else line
    print(f"perfsim: {line}", file=sys.stderr)
    return text


def _names(paths: list[Path]) -> str:
    names = [str(path) for path in paths]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

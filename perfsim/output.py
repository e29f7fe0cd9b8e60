"""Rendering results at the edge: `table` for people, `json` and `csv` for machines.

Numbers stay SI everywhere; only the table view formats them, by their column's unit suffix:
times in s, ms, µs or ns (`138.9 µs`, `1,050 s`); sizes in binary units (`96 MiB`); rates and counts
with SI prefixes (`3.35 TB/s`, `137.4 GFLOP`); energy and power with SI prefixes on both sides
(`97.24 mJ`, `5.6 kW`); arithmetic intensity as a plain number with 3 significant digits (`1,365`);
any other number with thousands separators (`139,006,066,688`). A table is kept as wide as the
terminal: long text is elided, a one-row table becomes a field/value listing, and columns that still
do not fit are left out and named (`width=None` shows everything, as `--wide` does).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")
MIN_TEXT = 12
"""The narrowest an elided text column gets, in characters."""
_NUMBER = re.compile(r"[-+]?(\d[\d,]*(\.\d*)?|\.\d+)(e[-+]?\d+)?( \S+|%)?|[-+]?inf( \S+)?|nan")
"""A formatted number, possibly with its unit (`1,365`, `138.9 µs`, `+2.5%`): right-aligned in a table."""

_UP = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))
_DOWN = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))
_TIME = ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
_BINARY = ((2**60, "Ei"), (2**50, "Pi"), (2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki"), (1, ""))
_COUNT = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))  # parameters: 70.55B, as people write


def significant(value: float, digits: int = 4) -> str:
    """`value` in fixed notation with at least `digits` significant digits, thousands separated: 1,365; 0.09724."""
    if not math.isfinite(value):
        return f"{value}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _scaled(value: float, unit: str, scales: Sequence[tuple[float, str]], digits: int = 4) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".rstrip()
    scale, prefix = next(((s, p) for s, p in scales if abs(value) >= s), scales[-1])
    return f"{significant(value / scale, digits)} {prefix}{unit}".rstrip()


def human(value: float, unit: str, binary: bool = False) -> str:
    """`value` in `unit` with the prefixes people read: human(3.35e12, "B/s") == "3.35 TB/s".

    Seconds take s, ms, µs or ns only (`1,050 s`, never `1.05 ks`); binary=True takes KiB, MiB, ...;
    joules and watts also take m, µ, n and p (`97.24 mJ`); other units take k, M, G, T, P, E only, so
    a rate below one stays a plain number (`0.5 B/s`, never `500 mB/s`).
    """
    if binary:
        return _scaled(value, unit, _BINARY)
    if unit == "s":
        return _scaled(value, unit, _TIME)
    return _scaled(value, unit, _UP + _DOWN if unit.startswith(("J", "W")) else _UP)


def _unit(unit: str, binary: bool = False) -> Callable[[float], str]:
    return lambda value: human(value, unit, binary)


# column-name suffix (after removing a trailing `_per_device`) → how its numbers read; first match wins
_COLUMNS: tuple[tuple[str, Callable[[float], str]], ...] = (
    ("params", lambda value: _scaled(value, "", _COUNT)),
    ("joules_per_token", _unit("J")),
    ("flops_per_token", _unit("FLOP")),
    ("_bytes_per_token", _unit("B", binary=True)),
    ("_bytes_per_s", _unit("B/s")),
    ("_flop_per_s", _unit("FLOP/s")),
    ("flops_per_s", _unit("FLOP/s")),
    ("_flop_per_byte", lambda value: significant(value, 3)),
    ("_bytes", _unit("B", binary=True)),
    ("_flops", _unit("FLOP")),
    ("_hz", _unit("Hz")),
    ("_w", _unit("W")),
    ("_j", _unit("J")),
    ("_per_s", significant),
    ("_s", _unit("s")),
)


def cell(column: str, value: Any) -> str:
    """`value` as a table shows it under `column` (the column name's suffix gives the unit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    key = f"_{column}".removesuffix("_per_device")
    for suffix, shown in _COLUMNS:
        if key.endswith(suffix):
            return shown(float(value))
    if isinstance(value, int) or value.is_integer():
        return f"{value:,.0f}"
    return significant(value)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one level: {"memory[0].capacity": 52428800, ...}."""
    if isinstance(data, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in data.items()]
    elif isinstance(data, list) and data and isinstance(data[0], dict | list):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(data)]
    else:
        return {prefix: ", ".join(map(str, data)) if isinstance(data, list) else data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, key))
    return flat


def to_json(data: Any) -> str:
    """Strict JSON (RFC 8259): a non-finite number (inf, nan) becomes null, never `Infinity` or `NaN`."""
    return json.dumps(_finite(data), indent=2, default=lambda value: _finite(float(value)), allow_nan=False)


def _finite(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def to_csv(records: list[dict[str, Any]]) -> str:
    """RFC 4180 CSV: a header of every column (in first-seen order), one line per record; None and NaN empty."""
    columns = _columns(records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if _missing(v := record.get(c)) else v for c in columns])
    return buffer.getvalue().rstrip("\n")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _columns(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def table_width(wide: bool = False) -> int | None:
    """How many characters a table may take: the terminal's width when stdout is one; None (no limit) with
    `wide`, or when the output goes to a file or a pipe."""
    if wide or not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def render(data: dict | list[dict], fmt: str, width: int | None = None) -> str:
    """Render a record or a list of records as `fmt` (one of FORMATS); a table fits in `width` characters."""
    if fmt == "json":
        return to_json(data)
    if isinstance(data, dict):
        flat = flatten(data)
        if fmt == "csv":
            return to_csv([{"field": k, "value": v} for k, v in flat.items()])
        return listing([(k, cell(k.rsplit(".", 1)[-1], v)) for k, v in flat.items()], width)
    if fmt == "csv":
        return to_csv(data)
    return table(data, width)


def listing(rows: Sequence[tuple[str, str]], width: int | None = None) -> str:
    """`field  value` lines, values aligned and long values wrapped under themselves to fit `width`."""
    if not rows:
        return ""
    indent = max(len(field) for field, _ in rows) + 2
    room = None if width is None else max(width - indent, 20)
    lines = []
    for field, value in rows:
        text = str(value)
        wrapped = textwrap.wrap(text, room, break_on_hyphens=False) if room and len(text) > room else [text]
        lines.append(f"{field:<{indent}}{wrapped[0]}".rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def table(records: list[dict[str, Any]], width: int | None = None) -> str:
    """Records as aligned columns (numbers right, text left) in at most `width` characters: a one-row table
    too wide becomes a field/value listing; otherwise long text (but in the first column) is elided, to no
    fewer than MIN_TEXT characters, and the columns that still do not fit are left out and named on a last
    line."""
    columns = _columns(records)
    if not columns:
        return ""
    cells = [[cell(c, r.get(c)) for c in columns] for r in records]
    numeric = [all(not text or _NUMBER.fullmatch(text) for text in (row[i] for row in cells))
               for i in range(len(columns))]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    shown = len(columns)
    if width is not None and _total(widths) > width:
        if len(records) == 1:
            return listing(list(zip(columns, cells[0], strict=True)), width)
        # text but the first (key) column may be elided down to a floor; the columns that fit so are shown
        floors = [w if numeric[i] or i == 0 else min(w, max(MIN_TEXT, len(columns[i]))) for i, w in enumerate(widths)]
        shown = _fitting(floors, width)
        widths = _elide(widths[:shown], floors[:shown], width)
    lines = [_line(columns[:shown], widths, numeric)] + [_line(row[:shown], widths, numeric) for row in cells]
    if shown < len(columns):
        rest = columns[shown:]
        note = (f"({len(rest)} more column{'s' * (len(rest) > 1)}: {', '.join(rest)}; --wide or --format csv "
                f"shows {'them' if len(rest) > 1 else 'it'})")
        lines += textwrap.wrap(note, width)
    return "\n".join(lines)


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + 2 * (len(widths) - 1)


def _elide(widths: list[int], floors: list[int], width: int) -> list[int]:
    """Narrow the column with the most to spare, one character at a time, until the table fits in `width` or
    every column is at its floor."""
    widths = list(widths)
    while _total(widths) > width:
        i = max(range(len(widths)), key=lambda j: widths[j] - floors[j])
        if widths[i] <= floors[i]:
            break
        widths[i] -= 1
    return widths


def _fitting(widths: list[int], width: int) -> int:
    """How many leading columns fit in `width` (at least one)."""
    shown = len(widths)
    while shown > 1 and _total(widths[:shown]) > width:
        shown -= 1
    return shown


def _line(cells: Sequence[str], widths: list[int], numeric: list[bool]) -> str:
    parts = []
    for text, w, right in zip(cells, widths, numeric, strict=False):
        text = text if len(text) <= w else f"{text[:w - 1]}…"
        parts.append(f"{text:>{w}}" if right else f"{text:<{w}}")
    return "  ".join(parts).rstrip()

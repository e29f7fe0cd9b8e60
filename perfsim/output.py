"""Rendering results at the edge: `table` for people, `json` and `csv` for machines.

Numbers stay SI everywhere; only the table view turns 3.35e12 under a `*_bytes_per_s`
column into "3.35 TB/s". Column names carry their units by suffix.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

FORMATS = ("table", "json", "csv")

# column-name suffix → (unit, binary prefixes?); unit None: a plain count with one decimal
_SUFFIX_UNITS = (
    ("params", "", False),
    ("tokens_per_s", None, False),
    ("tokens_per_s_per_device", None, False),
    ("_bytes_per_device", "B", True),
    ("_bytes_per_s", "B/s", False),
    ("_flop_per_s", "FLOP/s", False),
    ("_flop_per_byte", "FLOP/B", False),
    ("_bytes", "B", True),
    ("_flops", "FLOP", False),
    ("_hz", "Hz", False),
    ("_w", "W", False),
    ("_per_s", None, False),
    ("_s", "s", False),
)
_DECIMAL = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
            (1e-9, "n"), (1e-12, "p"))
_BINARY = ((2**50, "Pi"), (2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki"), (1, ""))


def human(value: float, unit: str, binary: bool = False) -> str:
    """`value` with an SI (or binary) prefix: human(3.35e12, "B/s") == "3.35 TB/s"."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    scale, prefix = next(((s, p) for s, p in (_BINARY if binary else _DECIMAL) if abs(value) >= s),
                         (_BINARY if binary else _DECIMAL)[-1])
    return f"{value / scale:.4g} {prefix}{unit}"


def _cell(column: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value is None:
        return "" if value is None else value
    for suffix, unit, binary in _SUFFIX_UNITS:
        if f"_{column}".endswith(suffix):
            return f"{value:,.1f}" if unit is None else human(float(value), unit, binary)
    return f"{value:.4g}" if isinstance(value, float) else value


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


def render(data: dict | list[dict], fmt: str) -> str:
    """Render a record or a list of records as `fmt` (one of FORMATS)."""
    if fmt == "json":
        return to_json(data)
    import pandas as pd  # only tables and CSV need it; it costs a noticeable share of the CLI's start

    records = data if isinstance(data, list) else [{"field": k, "value": v} for k, v in flatten(data).items()]
    frame = pd.DataFrame.from_records(records)
    if fmt == "csv":
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return buffer.getvalue().rstrip("\n")
    if isinstance(data, dict):
        cells = zip(frame.field, frame.value, strict=True)
        shown = frame.assign(value=[_cell(f.rsplit(".", 1)[-1], v) for f, v in cells])
    else:
        shown = frame.apply(lambda col: col.map(lambda v, c=col.name: _cell(c, v)))
    return shown.to_string(index=False)

"""SI quantities and the parser for strings such as "3.35 TB/s", "192 GiB" or "16.6 us".

Everything is stored in SI base units: bytes, bytes per second, FLOP per second,
hertz, seconds, watts, joules. Rates use decimal prefixes (1 GB/s = 1e9 B/s;
"400 Gb/s" is bits, 5e10 B/s). Memory capacities are binary (KiB, MiB, GiB, TiB)
as vendors mean them; a decimal "GB" on a capacity is rejected with a hint,
because a silent 7 % error decides whether a model fits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
SMALL = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12}
BINARY = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([^\s\d].*?)?\s*$")


class UnitError(ValueError):
    """A quantity string that does not parse, or has the wrong unit for its field."""


class Span(float):
    """A quantity known only as a range [low, high]; as a float it is the midpoint.

    Spec files write a range as a two-item list, e.g. `fp16: [280 TFLOP/s, 376 TFLOP/s]`;
    predictions made with the `low` and `high` ends give a band.
    """

    low: float
    high: float

    def __new__(cls, low: float, high: float) -> Span:
        if not low < high:
            raise UnitError(f"a range must be [low, high] with low < high, got [{low:g}, {high:g}]")
        span = super().__new__(cls, (low + high) / 2)
        span.low, span.high = low, high
        return span

    def __reduce__(self):
        return Span, (self.low, self.high)


def _split(text: str) -> tuple[float, str]:
    match = _QUANTITY.match(text.replace("_", ""))
    if not match:
        raise UnitError(f"'{text}' is not a number with a unit")
    return float(match.group(1)), (match.group(2) or "")


def _prefixed(unit: str, base: str, prefixes: dict[str, float]) -> float | None:
    """Scale of `unit` if it is one of `prefixes` followed by `base`, else None."""
    if not unit.endswith(base):
        return None
    return prefixes.get(unit[: -len(base)])


def _rate(unit: str, bases: dict[str, float], prefixes: dict[str, float] = DECIMAL) -> float | None:
    for base, scale in bases.items():
        factor = _prefixed(unit, base, prefixes)
        if factor is not None:
            return factor * scale
    return None


SMALLEST, LARGEST = 1e-18, 1e30
"""Bounds on any quantity in SI units: an attojoule to a quettabyte. Outside them (0, subnormal, inf) a
value is a typo that would print zeros, infinities or NaN downstream."""


def _parse(value: object, what: str, example: str, scale_of) -> float:
    """Turn a number or a quantity string into an SI float within [SMALLEST, LARGEST]."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a {what} (write e.g. '{example}')")
    if isinstance(value, int | float):
        number = float(value) if abs(value) <= LARGEST else math.inf
    elif isinstance(value, str):
        magnitude, unit = _split(value)
        scale = scale_of(unit)
        if scale is None:
            raise UnitError(f"'{value}' is not a {what} (write e.g. '{example}')")
        number = float(f"{magnitude * scale:.15g}")  # 66.9e12, not 66900000000000.01
    else:
        raise UnitError(f"{value!r} is not a {what} (write e.g. '{example}')")
    if not SMALLEST <= number <= LARGEST:  # also false for nan
        shown = value if not isinstance(value, int) or abs(value) <= LARGEST else "a number over 1e30"
        raise UnitError(f"{what} must be positive and between {SMALLEST:g} and {LARGEST:g} in SI units, got {shown!r}")
    return number


def _bandwidth_scale(unit: str) -> float | None:
    return _rate(unit, {"B/s": 1.0, "b/s": 0.125, "bps": 0.125})


def _capacity_scale(unit: str) -> float | None:
    if unit in ("", "B", "bytes"):
        return 1.0
    if unit in BINARY:
        return float(BINARY[unit])
    if unit.upper() in ("KB", "MB", "GB", "TB", "PB"):
        binary = unit[0].upper() + "iB"
        raise UnitError(f"capacities are binary: '{unit}' is ambiguous, write {binary} (e.g. 80 {binary})")
    return None


def _flops_scale(unit: str) -> float | None:
    if unit.endswith("OPS") and unit[:-3] in DECIMAL:
        return DECIMAL[unit[:-3]]
    return _rate(unit, {"FLOP/s": 1.0, "FLOPS": 1.0, "OP/s": 1.0})


def _frequency_scale(unit: str) -> float | None:
    return _rate(unit, {"Hz": 1.0})


def _time_scale(unit: str) -> float | None:
    return _rate(unit, {"s": 1.0}, SMALL)


def _power_scale(unit: str) -> float | None:
    return _rate(unit, {"W": 1.0}, DECIMAL | SMALL)


def _energy_scale(unit: str) -> float | None:
    return _rate(unit, {"J": 1.0}, DECIMAL | SMALL)


def _price_scale(unit: str) -> float | None:
    return 1.0 if unit in ("", "USD/h", "$/h") else None


PARSERS = {
    "bandwidth": ("bandwidth", "3.35 TB/s", _bandwidth_scale),
    "capacity": ("capacity", "80 GiB", _capacity_scale),
    "flops": ("throughput", "989.4 TFLOP/s", _flops_scale),
    "frequency": ("frequency", "1.98 GHz", _frequency_scale),
    "time": ("time", "16.6 us", _time_scale),
    "power": ("power", "700 W", _power_scale),
    "energy": ("energy", "0.464 nJ", _energy_scale),
    "price": ("price", "2.5 USD/h", _price_scale),
}


def parse_quantity(value: object, kind: str) -> float:
    """Parse `value` as a quantity of `kind` (a key of PARSERS) into SI units.

    A two-item list [low, high] gives a Span. Raise UnitError if the unit does not
    fit the kind, the value is not positive, or a range is reversed.
    """
    what, example, scale_of = PARSERS[kind]
    if isinstance(value, Span):
        return value
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise UnitError(f"a range is a list of two {what}s [low, high], got {len(value)} items")
        return Span(*(_parse(v, what, example, scale_of) for v in value))
    return _parse(value, what, example, scale_of)


@dataclass(frozen=True)
class Unit:
    """Marks a field's quantity kind, so tables can print it with its unit."""

    symbol: str
    binary: bool = False


def _as_json_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**63 else float(value)


def _quantity_type(kind: str, symbol: str, description: str):
    return Annotated[
        float,
        Unit(symbol, binary=kind == "capacity"),
        PlainValidator(lambda v: parse_quantity(v, kind)),
        PlainSerializer(_as_json_number),
        WithJsonSchema({"anyOf": [{"type": "number", "minimum": SMALLEST, "maximum": LARGEST}, {"type": "string"},
                                  {"type": "array", "minItems": 2, "maxItems": 2}],
                        "description": description}),
    ]


BytesPerSecond = _quantity_type("bandwidth", "B/s", "bytes per second (decimal: '3.35 TB/s', '400 Gb/s')")
Bytes = _quantity_type("capacity", "B", "bytes (binary: '80 GiB', '48 KiB', or plain bytes)")
FlopsPerSecond = _quantity_type("flops", "FLOP/s", "operations per second ('989.4 TFLOP/s', '280 TOPS')")
Hertz = _quantity_type("frequency", "Hz", "hertz ('1.98 GHz')")
Seconds = _quantity_type("time", "s", "seconds ('16.6 us', '2 ms')")
Watts = _quantity_type("power", "W", "watts ('700 W', '15 kW')")
Joules = _quantity_type("energy", "J", "joules ('0.464 nJ')")
DollarsPerHour = _quantity_type("price", "USD/h", "US dollars per device-hour")

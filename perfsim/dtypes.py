"""Number formats: DType (one element's storage) and QuantScheme (elements + shared scales).

`resolve_format("q4_0").bits_per_element` is 4.5: int4 weights with one fp16 scale
per group of 32. Names are lower-case; `posit8_0` and `posit(8,0)` name the same type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator

from perfsim.errors import PerfsimError


@dataclass(frozen=True)
class DType:
    """One element's number format.

    `family` is float, int, posit or scale (a power-of-two scale such as MX's e8m0).
    For floats `exponent_bits`/`mantissa_bits` are the IEEE-style field widths; for
    posits `es` is the exponent size. `storage_bits` is what one element occupies in
    memory (ternary values are stored in 2 bits).
    """

    name: str
    storage_bits: int
    family: Literal["float", "int", "posit", "scale"]
    exponent_bits: int = 0
    mantissa_bits: int = 0
    es: int = 0

    @property
    def bits_per_element(self) -> float:
        return float(self.storage_bits)

    @property
    def bytes_per_element(self) -> float:
        return self.storage_bits / 8


@dataclass(frozen=True)
class QuantScheme:
    """Elements of `element` with one `scale` per `group_size` elements (block quantisation)."""

    name: str
    element: DType
    group_size: int
    scale: DType

    @property
    def storage_bits(self) -> int:
        return self.element.storage_bits

    @property
    def bits_per_element(self) -> float:
        return self.element.storage_bits + self.scale.storage_bits / self.group_size

    @property
    def bytes_per_element(self) -> float:
        return self.bits_per_element / 8


def _float(name: str, exponent: int, mantissa: int) -> DType:
    return DType(name, 1 + exponent + mantissa, "float", exponent, mantissa)


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        _float("fp64", 11, 52),
        _float("fp32", 8, 23),
        DType("tf32", 32, "float", 8, 10),  # stored as fp32, computed with a 10-bit mantissa
        _float("bf16", 8, 7),
        _float("fp16", 5, 10),
        _float("fp8_e4m3", 4, 3),
        _float("fp8_e5m2", 5, 2),
        _float("fp4_e2m1", 2, 1),
        DType("e8m0", 8, "scale", 8, 0),
        DType("int32", 32, "int"),
        DType("int16", 16, "int"),
        DType("int8", 8, "int"),
        DType("int4", 4, "int"),
        DType("int2", 2, "int"),
        DType("int1", 1, "int"),
        DType("ternary", 2, "int"),  # {-1, 0, +1} in a 2-bit field (T-MAC's packing)
    )
}
ALIASES = {"fp8": "fp8_e4m3", "fp4": "fp4_e2m1", "float32": "fp32", "float16": "fp16",
           "bfloat16": "bf16", "float64": "fp64", "half": "fp16"}

QUANT_SCHEMES: dict[str, QuantScheme] = {
    q.name: q
    for q in (
        QuantScheme("q4_0", DTYPES["int4"], 32, DTYPES["fp16"]),
        QuantScheme("q8_0", DTYPES["int8"], 32, DTYPES["fp16"]),
        QuantScheme("mxfp4", DTYPES["fp4_e2m1"], 32, DTYPES["e8m0"]),
        QuantScheme("mxfp8", DTYPES["fp8_e4m3"], 32, DTYPES["e8m0"]),
    )
}

_POSIT = re.compile(r"^posit\(?(\d+)[,_](\d+)\)?$")


def posit(n: int, es: int) -> DType:
    """The posit<n, es> format (n total bits, es exponent bits); Raise PerfsimError if invalid."""
    if not 2 <= n <= 64 or not 0 <= es <= n - 2:
        raise PerfsimError(f"posit({n},{es}) is not a valid posit: need 2 <= n <= 64 and 0 <= es <= n-2")
    return DType(f"posit{n}_{es}", n, "posit", es=es)


def known_names(schemes: bool = False) -> list[str]:
    return sorted(DTYPES) + ["posit<n>_<es>"] + (sorted(QUANT_SCHEMES) if schemes else [])


@lru_cache(maxsize=512)
def resolve_dtype(name: str) -> DType:
    """The DType called `name` (case-insensitive, aliases such as fp8 accepted)."""
    key = name.strip().lower().replace(" ", "")
    key = ALIASES.get(key, key)
    if key in DTYPES:
        return DTYPES[key]
    match = _POSIT.match(key)
    if match:
        return posit(int(match.group(1)), int(match.group(2)))
    raise PerfsimError(f"unknown dtype '{name}' (known: {', '.join(known_names())})")


@lru_cache(maxsize=512)
def resolve_format(name: str) -> DType | QuantScheme:
    """A DType or a named quantisation scheme such as q4_0 or mxfp4."""
    key = name.strip().lower()
    if key in QUANT_SCHEMES:
        return QUANT_SCHEMES[key]
    try:
        return resolve_dtype(key)
    except PerfsimError:
        raise PerfsimError(f"unknown dtype or quantisation scheme '{name}' (known: {', '.join(known_names(True))})")\
            from None


def _dtype_name(name: str) -> str:
    return resolve_dtype(name).name


DTypeName = Annotated[str, AfterValidator(_dtype_name)]
"""A field holding a dtype name; validated and normalised (fp8 -> fp8_e4m3)."""

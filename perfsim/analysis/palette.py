"""Stable colours: the same device gets the same colour on every plot, whatever order it is given in."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from matplotlib.colors import to_hex, to_rgb

PALETTE = ("#1f77b4", "#8c564b", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#e377c2", "#17becf", "#bcbd22",
           "#393b79")


def device_colours(names: Iterable[str]) -> dict[str, str]:
    """A palette colour per name: crc32(name) picks the slot; on one plot, a name whose slot an earlier
    name (in sorted order) took moves to the next free slot, so devices on one plot never share a colour
    (until the palette runs out) and the result does not depend on the order of `names`."""
    colours: dict[str, str] = {}
    for name in sorted(set(names)):
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        for step in range(len(PALETTE)):
            if PALETTE[(slot + step) % len(PALETTE)] not in colours.values():
                slot = (slot + step) % len(PALETTE)
                break
        colours[name] = PALETTE[slot]
    return colours


def tint(colour: str, amount: float) -> str:
    """`colour` mixed with white: 0 keeps it, 1 is white."""
    return to_hex(tuple(c + (1.0 - c) * amount for c in to_rgb(colour)))


def shade(colour: str, amount: float) -> str:
    """`colour` mixed with black: 0 keeps it, 1 is black (darker text that stays readable on white)."""
    return to_hex(tuple(c * (1.0 - amount) for c in to_rgb(colour)))

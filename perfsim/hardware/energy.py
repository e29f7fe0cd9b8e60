"""Energy per operation and per byte, where a paper, datasheet or simulator gives them (PIM, FPGA, MCU).

A spec's `energy:` block prices an op's counts (the per-op model of perfsim.cost.energy):
J per FLOP by the dtype the chip computes in, J per byte read or written at each memory
level, J per byte a chip sends on each link, plus a static power over the op's time. Terms
the block does not list are not counted, so its `source` must say what the numbers cover.
Chips without one stay on the power model of their `power:` block (TDP and idle power).

Imported by perfsim.hardware.common after `Spec`, `Name` and `Source` are defined (see there).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Name, Source, Spec
from perfsim.units import Joules, Watts


class EnergySpec(Spec):
    """Per-op energies of one chip: `per_flop` (J/FLOP by dtype), `per_byte` (J/B by memory level),
    `per_link_byte` (J/B a chip sends, by the name of the link or of a system's interconnect it crosses)
    and `static_power` (W drawn whenever the chip is on)."""

    per_flop: dict[DTypeName, Joules] = Field(default_factory=dict)
    per_byte: dict[Name, Joules] = Field(default_factory=dict)
    per_link_byte: dict[Name, Joules] = Field(default_factory=dict)
    static_power: Watts | None = None
    source: Source


def unknown_energy_levels(energy: EnergySpec, levels: Iterable[str]) -> str | None:
    """`energy.per_byte`'s keys that are not memory levels of the chip, as one message; None if all are.

    DeviceBase's validator raises ValueError with it, as for calibration.memory_efficiency. `per_link_byte`
    is not checked here: its keys may name a system's interconnect (dgx-h100's `nvswitch`), not a chip link.
    """
    levels = list(levels)
    unknown = sorted(set(energy.per_byte) - set(levels))
    return f"energy.per_byte names unknown levels {unknown} (levels: {', '.join(levels)})" if unknown else None

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
    `per_link_byte` (J/B sent, by link name) and `static_power` (W drawn whenever the chip is on)."""

    per_flop: dict[DTypeName, Joules] = Field(default_factory=dict)
    per_byte: dict[Name, Joules] = Field(default_factory=dict)
    per_link_byte: dict[Name, Joules] = Field(default_factory=dict)
    static_power: Watts | None = None
    source: Source


def unknown_energy_names(energy: EnergySpec, levels: Iterable[str], links: Iterable[str]) -> str | None:
    """What `energy` names that the chip lacks, as one message; None if every key is a level or link of the chip.

    DeviceBase's validator raises ValueError with this message (like calibration.memory_efficiency).
    """
    levels, links = list(levels), list(links)
    problems = []
    for field, known in (("per_byte", levels), ("per_link_byte", links)):
        unknown = sorted(set(getattr(energy, field)) - set(known))
        if unknown:
            what = "memory levels" if field == "per_byte" else "links"
            problems.append(f"energy.{field} names unknown {what} {unknown} ({what}: {', '.join(known) or 'none'})")
    return "; ".join(problems) or None

"""Processing in memory in Duplex's style: an xPU whose HBM stacks compute (Logic-PIM)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Bytes, BytesPerSecond, Count, DeviceBase, FlopsPerSecond, Source, Spec
from perfsim.units import Joules

AGREEMENT = 0.01
"""Relative tolerance for stacks × per-stack figures against the main memory level (0.67 TB/s × 5 = 3.35 TB/s)."""


class PimStacks(Spec):
    """The compute-capable memory: `stacks` HBM stacks, each with its own logic die.

    `internal_bandwidth_per_stack` is what the PIM logic sees; `external_bandwidth_per_stack`
    what the xPU sees. `energy_per_32b_*`: energy to move 32 bytes to the xPU (`host`) or to the
    PIM logic (`pim`); `energy_per_flop`: energy of one FLOP on either unit.
    """

    stacks: Count
    capacity_per_stack: Bytes
    external_bandwidth_per_stack: BytesPerSecond
    internal_bandwidth_per_stack: BytesPerSecond
    peak_per_stack: dict[DTypeName, FlopsPerSecond]
    energy_per_32b_host: Joules | None = None
    energy_per_32b_pim: Joules | None = None
    energy_per_flop: Joules | None = None
    source: Source


class Pim(DeviceBase):
    """An xPU (its units in `compute`) with PIM memory (`pim`); ops go where their Op/B fits.

    The stacks are the chip's main memory: stacks × capacity_per_stack and stacks ×
    external_bandwidth_per_stack must match the main memory level (within 1 %). Raise ValueError if not.
    """

    kind: Literal["pim"]
    cores: Count | None = None
    pim: PimStacks

    @model_validator(mode="after")
    def _stacks_are_main_memory(self) -> Pim:
        main, pim = self.main, self.pim
        for field, per_stack, whole in (("capacity", pim.capacity_per_stack, main.capacity),
                                        ("external_bandwidth", pim.external_bandwidth_per_stack, main.bandwidth)):
            total = pim.stacks * per_stack
            if abs(total - whole) > AGREEMENT * whole:
                raise ValueError(f"pim.stacks × pim.{field}_per_stack = {total:.4g} differs from main memory "
                                 f"'{main.name}' {field.split('_')[-1]} {whole:.4g} (the stacks are the main memory)")
        return self

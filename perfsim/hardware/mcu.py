"""Microcontrollers: a few simple cores, MAC/cycle per dtype, FPU or emulated floats, tiny SRAM.

What the MCU cost model (perfsim.cost.mcu) reads besides the common fields:
- `sync`: cycles of one barrier and of forking a parallel region onto the cluster;
- `issue_width`: instructions a core issues per cycle (1 on an in-order RI5CY core);
- `fpus`: floating-point units in the cluster when cores share them (the PULP cluster's 4 for 8 cores);
- `soft_float`: cycles of one software-emulated operation per dtype listed in a unit's `emulated`;
- `inner_loops`: the kernel library's matrix-multiply inner loop per dtype (PULP-TrainLib, PULP-NN,
  CMSIS-NN), counted in instructions: MAC/cycle per core follows from it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Count, DeviceBase, Natural, Source, Spec


class Synchronisation(Spec):
    """Cost of coordinating the cluster's cores: one barrier, and forking work to them."""

    barrier_cycles: Annotated[float, Field(ge=0)]
    fork_cycles: Annotated[float, Field(ge=0)] = 0
    source: Source


class SoftFloat(Spec):
    """Cycles one software-emulated operation of a dtype takes on one core (a call into the float library)."""

    add_cycles: Annotated[float, Field(gt=0)]
    mul_cycles: Annotated[float, Field(gt=0)]
    compare_cycles: Annotated[float, Field(gt=0)]
    source: Source

    @property
    def mac_cycles(self) -> float:
        """A multiply-accumulate: one emulated multiply and one emulated add."""
        return self.mul_cycles + self.add_cycles


class InnerLoop(Spec):
    """One iteration of a kernel library's matrix-multiply inner loop, counted in instructions.

    `macs` multiply-accumulates done by `mac_instructions` MAC/FMA/dot-product instructions (each on the
    FPU for float dtypes), plus `loads` and `other` instructions (shuffles, packing, address updates).
    """

    library: str
    macs: Count
    mac_instructions: Count
    loads: Natural
    other: Natural = 0
    source: Source

    @property
    def instructions(self) -> int:
        return self.mac_instructions + self.loads + self.other


class Mcu(DeviceBase):
    """A microcontroller or PULP-style cluster; `cores` counts the cores that run kernels.

    `fabric_controller`: a separate core that runs the application, offloads kernels to the cluster
    and does not compute in it. `fpus` (with `fpus_source`): floating-point units shared by the cores;
    None means one per core. Raise ValueError if a unit's emulated dtype lacks a `soft_float` entry.
    """

    per_unit_calibration: ClassVar[bool] = False  # the model scales the whole chip's clock

    kind: Literal["mcu"]
    cores: Count
    fabric_controller: bool = False
    sync: Synchronisation | None = None
    issue_width: Count = 1
    issue_source: Source | None = None
    fpus: Count | None = None
    fpus_source: Source | None = None
    soft_float: dict[DTypeName, SoftFloat] = Field({}, description="cycles of each emulated dtype's operations")
    inner_loops: dict[DTypeName, InnerLoop] = Field({}, description="the kernel library's inner loop per dtype")

    @model_validator(mode="after")
    def _emulation_priced(self) -> Mcu:
        emulated = {d for unit in self.compute for d in unit.emulated}
        missing = sorted(emulated - set(self.soft_float))
        if missing:
            raise ValueError(f"dtypes {missing} are emulated: give their cycles in 'soft_float'")
        if (self.fpus is None) != (self.fpus_source is None):
            raise ValueError("give 'fpus' together with 'fpus_source'")
        return self

    @property
    def emulated(self) -> set[str]:
        """Dtypes this MCU runs in software."""
        return {d for unit in self.compute for d in unit.emulated}

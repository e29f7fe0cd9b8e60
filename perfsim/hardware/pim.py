"""Processing in memory in Duplex's style: an xPU whose HBM stacks compute (Logic-PIM)."""

from typing import Literal

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Bytes, BytesPerSecond, Count, DeviceBase, FlopsPerSecond, Source, Spec
from perfsim.units import Joules


class PimStacks(Spec):
    """The compute-capable memory: `stacks` HBM stacks, each with its own logic die.

    `internal_bandwidth_per_stack` is what the PIM logic sees; `external_bandwidth_per_stack`
    what the xPU sees. `energy_per_32b_*`: energy to move 32 bytes to the xPU or to the PIM logic.
    """

    stacks: Count
    capacity_per_stack: Bytes
    external_bandwidth_per_stack: BytesPerSecond
    internal_bandwidth_per_stack: BytesPerSecond
    peak_per_stack: dict[DTypeName, FlopsPerSecond]
    energy_per_32b_host: Joules | None = None
    energy_per_32b_pim: Joules | None = None
    source: Source


class Pim(DeviceBase):
    """An xPU (its units in `compute`) with Logic-PIM memory; ops go where their Op/B fits."""

    kind: Literal["pim"]
    cores: Count | None = None
    pim: PimStacks

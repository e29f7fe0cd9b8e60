"""FPGAs running a fixed accelerator design: a DSP-bound MAC array at a chosen clock."""

from typing import Literal

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Count, DeviceBase, Source, Spec


class FabricResources(Spec):
    """What the FPGA part offers (datasheet)."""

    dsp: Count
    lut: Count
    bram_36kb: Count
    uram: int = 0
    source: Source


class Design(Spec):
    """The accelerator built on the fabric: a `rows` × `cols` MAC array, its operand widths."""

    name: str
    rows: Count
    cols: Count
    weight_dtype: DTypeName
    activation_dtype: DTypeName
    source: Source

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols


class Fpga(DeviceBase):
    """An FPGA board with one accelerator design; `clock.peak` is the design's clock."""

    kind: Literal["fpga"]
    fabric: FabricResources
    design: Design

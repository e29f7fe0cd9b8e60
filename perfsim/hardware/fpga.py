"""FPGAs running a fixed accelerator design: a DSP-bound MAC array at a chosen clock, its buffers and DDR ports."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from perfsim.dtypes import DTypeName
from perfsim.hardware.common import Count, DeviceBase, Source, Spec
from perfsim.units import Bytes


class FabricResources(Spec):
    """What the FPGA part offers (datasheet)."""

    dsp: Count
    lut: Count
    bram_36kb: Count
    uram: int = 0
    source: Source


class AxiPorts(Spec):
    """The design's memory ports into DDR: `count` ports, each moving `width_bits` per design-clock cycle."""

    count: Count
    width_bits: Count
    source: Source


class Design(Spec):
    """The accelerator built on the fabric: a `rows` × `cols` MAC array, its units, buffers and ports.

    `dataflow` says how a linear layer M×K×N maps onto the array (perfsim.cost.fpga):
    `row_vector` — each cycle one row's `rows` inputs meet a `rows` × `cols` weight tile (Edge-MoE's linear unit);
    `output_stationary` — a systolic array holding a `rows` × `cols` output tile while K streams through.
    `vector_lanes`: elements per cycle of the elementwise, norm and softmax units, and the dot-product width
    of the attention unit, which holds `attention_queries` queries while keys (then values) stream past.
    `weight_buffer`: bytes of one of the two (ping/pong) on-chip weight buffers.
    """

    name: str
    rows: Count
    cols: Count
    weight_dtype: DTypeName
    activation_dtype: DTypeName
    dataflow: Literal["row_vector", "output_stationary"]
    vector_lanes: Count
    attention_queries: Count
    weight_buffer: Bytes = Field(description="bytes of one of the two ping/pong weight buffers")
    axi: AxiPorts
    source: Source

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols


class Fpga(DeviceBase):
    """An FPGA board with one accelerator design; `clock.peak` is the design's clock.

    Raise ValueError if no compute unit delivers the design's 2 · rows · cols FLOP per cycle.
    """

    per_unit_calibration: ClassVar[bool] = False  # the model scales the whole chip's clock

    kind: Literal["fpga"]
    fabric: FabricResources
    design: Design

    @model_validator(mode="after")
    def _design_matches_compute(self) -> Fpga:
        expected = 2 * self.design.macs_per_cycle * self.clock.peak
        peak = self.peak_flops(self.design.weight_dtype)
        if peak is None or not math.isclose(peak, expected, rel_tol=1e-9):
            raise ValueError(f"compute gives {peak} FLOP/s for {self.design.weight_dtype}, but the design's "
                             f"{self.design.rows} x {self.design.cols} MAC array at the clock gives {expected:g}")
        return self

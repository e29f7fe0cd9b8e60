"""MAC-array engines (TPE's four classic tensor processing engines, SCALE-Sim's systolic arrays): a described
array of multiply-accumulate units with a dataflow, its on-chip operand buffers and its off-chip memory.

The array's `compute` block is derived from `array` (never written in the spec), so a sweep that overrides
`array.rows` or `array.cols` changes the chip's peak with it. Buffers are memory levels named
`ifmap_sram`, `filter_sram` and `ofmap_sram` (SCALE-Sim's three SRAMs); an operand whose buffer the chip
lacks streams from main memory (the last level, or `main_memory`) with no reuse beyond the array.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from perfsim.dtypes import DTypeName, resolve_dtype
from perfsim.hardware.common import Count, DeviceBase, Source, Spec
from perfsim.units import Joules

Dataflow = Literal["output_stationary", "weight_stationary", "input_stationary", "cube", "adder_tree", "matrix_2d"]
SYSTOLIC = ("output_stationary", "weight_stationary", "input_stationary")
BUFFER_LEVELS = {"ifmap": "ifmap_sram", "filter": "filter_sram", "ofmap": "ofmap_sram"}
"""Operand (SCALE-Sim's names: ifmap = A, filter = B, ofmap = C of C = A·B) → the memory level that buffers it."""


class Array(Spec):
    """The MAC array: `rows` × `cols` PEs (× `depth` for a 3-D cube), each one MAC per cycle in `dtype`.

    dataflow (perfsim.cost.mac_array gives each one's cycle count):
    `output_stationary` / `weight_stationary` / `input_stationary` — a systolic array (SCALE-Sim's three);
    `cube` — rows × cols × depth MACs: an rows×depth by depth×cols matrix product per cycle (Ascend's Cube unit);
    `adder_tree` — `rows` multiplier–adder trees, each reducing `cols` products per cycle;
    `matrix_2d` — rows × cols PEs with broadcast (not systolic) operands, holding an output tile.
    `lanes`: MACs one PE does per cycle in other formats (SIMD sub-word lanes: XR-NPE's 4-bit formats);
    `dtype` itself is 1. `serial_bits`: a bit-serial PE consumes this many weight bits per cycle, so one MAC
    takes ⌈bits / serial_bits⌉ cycles (absent: bit-parallel). `pe_energy`: joules one PE spends per cycle the
    array runs; `pe_area_um2`: µm² of silicon per PE.
    """

    dataflow: Dataflow
    rows: Count
    cols: Count
    depth: Count = 1
    dtype: DTypeName
    lanes: dict[DTypeName, Count] = Field(default_factory=dict)
    serial_bits: Count | None = None
    pe_energy: Joules | None = None
    pe_area_um2: float | None = Field(None, gt=0)
    source: Source

    @model_validator(mode="after")
    def _shape(self) -> Array:
        if self.depth != 1 and self.dataflow != "cube":
            raise ValueError(f"depth {self.depth} is for a cube; a {self.dataflow} array is rows x cols")
        if self.dtype in self.lanes:
            raise ValueError(f"lanes lists the array's own dtype {self.dtype} (it is 1 lane by definition)")
        return self

    @property
    def pes(self) -> int:
        return self.rows * self.cols * self.depth

    @property
    def formats(self) -> dict[str, int]:
        """MACs per PE per cycle by format: `dtype` (1) and the `lanes`."""
        return {self.dtype: 1, **self.lanes}

    def passes(self, dtype: str) -> int:
        """Cycles one MAC takes: ⌈weight bits / serial_bits⌉ on a bit-serial PE, else 1."""
        if self.serial_bits is None:
            return 1
        return -(-resolve_dtype(dtype).storage_bits // self.serial_bits)

    def macs_per_cycle(self, dtype: str) -> float:
        """The array's peak MACs per cycle in `dtype`."""
        return self.pes * self.formats[dtype] / self.passes(dtype)


DERIVED = "derived from the array"


def _derived(compute: Any) -> bool:
    """Whether `compute` is one this class derived (a dumped spec read back, as a sweep's override does): it is
    derived again from the array as it now stands."""
    units = [u.model_dump() if isinstance(u, Spec) else u for u in compute] if isinstance(compute, list) else []
    return len(units) == 1 and isinstance(units[0], dict) and str(units[0].get("source", "")).startswith(DERIVED)


class MacArray(DeviceBase):
    """One MAC-array engine (a chip). `compute` is derived from `array`: one matrix unit with 2 FLOP per MAC.

    Raise ValueError if the spec writes a `compute` block of its own (one it derived itself, read back from a dump,
    is derived again).
    """

    per_unit_calibration: ClassVar[bool] = False  # the model scales the whole chip's clock

    kind: Literal["mac_array"]
    array: Array

    @model_validator(mode="before")
    @classmethod
    def _derive_compute(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "array" not in data:
            return data
        if "compute" in data and not _derived(data["compute"]):
            raise ValueError("a mac_array's compute is derived from its array; remove the compute block")
        array = data["array"] if isinstance(data["array"], Array) else Array.model_validate(data["array"])
        per_cycle = {d: 2 * array.macs_per_cycle(d) for d in array.formats}
        unit = {"name": "mac_array", "role": "matrix", "per_cycle": per_cycle, "cores": 1,
                "source": f"{DERIVED}: 2 FLOP x {array.rows} x {array.cols} x {array.depth} PEs x lanes per cycle"}
        return {**data, "compute": [unit]}

    def buffer(self, operand: str) -> str | None:
        """The memory level buffering `operand` (ifmap, filter, ofmap); None if the chip has none for it."""
        name = BUFFER_LEVELS[operand]
        return name if any(level.name == name for level in self.memory) else None



def with_array(chip: MacArray, **fields: object) -> MacArray:
    """`chip` with some `array` fields replaced (rows=64, dataflow="weight_stationary"), its compute re-derived —
    what a sweep's `array.rows` override does. Raise pydantic's ValidationError for a bad value."""
    data = chip.model_dump(exclude={"compute"})
    data["array"] = {**data["array"], **fields}
    return MacArray.model_validate(data)

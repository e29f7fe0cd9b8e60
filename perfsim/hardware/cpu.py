"""CPUs: SIMD cores sharing a memory-bandwidth ceiling, plus table-lookup (T-MAC) throughput."""

from typing import Annotated, Literal

from pydantic import Field

from perfsim.hardware.common import Count, DeviceBase, Source, Spec


class TableLookup(Spec):
    """Table-lookup issue rate used by T-MAC-style low-bit GEMV (e.g. NEON TBL, AVX-512 VPSHUFB).

    `lookups_per_cycle_per_core`: 8-bit table entries looked up per cycle per core;
    `table_entries`: entries one lookup instruction indexes (16 for a 4-bit index).
    """

    lookups_per_cycle_per_core: Annotated[float, Field(gt=0)]
    table_entries: Count = 16
    source: Source


class Cpu(DeviceBase):
    """A CPU socket or SoC's CPU cluster. `cores` counts the cores perfsim schedules on."""

    kind: Literal["cpu"]
    cores: Count
    simd_bits: Count
    lut: TableLookup | None = None

"""CPUs: SIMD cores sharing a memory-bandwidth ceiling, plus table-lookup (T-MAC) throughput."""

from typing import Annotated, Literal

from pydantic import Field

from perfsim.hardware.common import Count, DeviceBase, Source, Spec


class TableLookup(Spec):
    """The SIMD issue rate a T-MAC-style table-lookup kernel runs on (NEON TBL, AVX2/AVX-512 VPSHUFB).

    `simd_issue_per_cycle_per_core`: SIMD instructions per cycle per core on the pipes that
    execute the lookup (TBL or PSHUFB) and its shifts, masks and adds; `lookups_per_instruction`:
    8-bit table entries one lookup instruction returns (16 for a 128-bit register).
    """

    simd_issue_per_cycle_per_core: Annotated[float, Field(gt=0)]
    lookups_per_instruction: Count = 16
    source: Source


class Cpu(DeviceBase):
    """A CPU socket or SoC's CPU cluster. `cores` counts the cores perfsim schedules on."""

    kind: Literal["cpu"]
    cores: Count
    simd_bits: Count
    lut: TableLookup | None = None

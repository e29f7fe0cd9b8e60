"""CPUs: SIMD cores in clusters sharing a memory-bandwidth ceiling, plus table-lookup (T-MAC) throughput."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from perfsim.hardware.common import Count, DeviceBase, Name, Source, Spec
from perfsim.units import Bytes, BytesPerSecond, Seconds


class TableLookup(Spec):
    """The SIMD issue rate a T-MAC-style table-lookup kernel runs on (NEON TBL, AVX2/AVX-512 VPSHUFB).

    `simd_issue_per_cycle_per_core`: SIMD instructions per cycle per core on the pipes that
    execute the lookup (TBL or PSHUFB) and its shifts, masks and adds; `lookups_per_instruction`:
    8-bit table entries one lookup instruction returns (16 for a 128-bit register).
    """

    simd_issue_per_cycle_per_core: Annotated[float, Field(gt=0)]
    lookups_per_instruction: Count = 16
    source: Source


class MemoryParallelism(Spec):
    """What one core keeps in flight to main memory: Little's law gives its sustainable bandwidth.

    per-core bytes/s = `line_fill_buffers` × `line_bytes` / `latency` (the load-to-use latency of
    main memory). Used unless `calibration.core_bandwidth` gives a measured value.
    """

    line_fill_buffers: Count
    line_bytes: Bytes
    latency: Seconds
    source: Source


class CoreCluster(Spec):
    """A group of cores sharing a path to memory (an Apple P- or E-cluster); `bandwidth` caps what they draw."""

    name: Name
    cores: Count
    bandwidth: BytesPerSecond | None = None
    source: Source


class Cpu(DeviceBase):
    """A CPU socket or SoC's CPU cores. `cores` counts the cores perfsim schedules on (threads, one per core).

    `clusters`: the scheduled cores' groups, filled in order as threads are added (their cores sum to
    `cores` for the full chip); `fork_join`: seconds a parallel region's fork and join barrier cost.
    """

    kind: Literal["cpu"]
    cores: Count
    simd_bits: Count
    lut: TableLookup | None = None
    memory_parallelism: MemoryParallelism | None = None
    clusters: list[CoreCluster] = Field([], description="core clusters sharing a path to memory, filled in order")
    fork_join: Seconds | None = Field(None, description="seconds one parallel region's fork + join costs")
    fork_join_source: Source | None = None

    @model_validator(mode="after")
    def _clusters_cover_cores(self) -> Cpu:
        in_clusters = sum(c.cores for c in self.clusters)
        if self.clusters and in_clusters < self.cores:
            raise ValueError(f"clusters hold {in_clusters} cores, fewer than the {self.cores} scheduled cores")
        if (self.fork_join is None) != (self.fork_join_source is None):
            raise ValueError("give 'fork_join' together with 'fork_join_source' (the microbenchmark it came from)")
        return self

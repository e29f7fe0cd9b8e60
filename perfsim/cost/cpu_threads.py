"""Threads on a CPU: what bandwidth they can draw, how evenly work splits, and what a parallel region costs.

- Per-core bandwidth: measured (`calibration.core_bandwidth`) or Little's law from the spec's memory-level
  parallelism: line fill buffers × line bytes / main-memory latency.
- Threads fill the spec's clusters in order; each cluster draws at most its cap, the chip at most the
  main level's sustained bandwidth (datasheet × `memory_efficiency`).
- Work split into ⌈work / threads⌉-sized chunks: the busiest thread sets the pace, the others idle at the end.
- A parallel region (one op on more than one thread) pays one fork and one join: the spec's `fork_join`,
  else DEFAULT_FORK_JOIN_S.
"""

from __future__ import annotations

import math

from perfsim.hardware.cpu import Cpu

DEFAULT_FORK_JOIN_S = 2e-6
"""Stated default for one fork + join of a thread pool of a few cores when the spec gives none: 2 µs, the order
of the EPCC OpenMP syncbench PARALLEL overhead on a few-core CPU (a default, not a measurement of any chip here)."""


def core_bandwidth(cpu: Cpu) -> float | None:
    """Bytes/s one core can draw from main memory: measured if given, else Little's law; None if neither is known."""
    measured = cpu.calibration.core_bandwidth.get(cpu.main.name)
    if measured is not None:
        return measured.value
    mlp = cpu.memory_parallelism
    return mlp.line_fill_buffers * mlp.line_bytes / mlp.latency if mlp else None


def socket_bandwidth(cpu: Cpu) -> float:
    """The main level's sustained bytes/s for the whole chip: datasheet × its memory_efficiency calibration."""
    efficiency = cpu.calibration.memory_efficiency.get(cpu.main.name)
    return cpu.main.bandwidth * (efficiency.value if efficiency else 1.0)


def threads_per_cluster(cpu: Cpu, threads: int) -> list[int]:
    """How many of `threads` land on each cluster, filling clusters in spec order (one cluster when none given)."""
    if not cpu.clusters:
        return [threads]
    placed, left = [], threads
    for cluster in cpu.clusters:
        placed.append(min(left, cluster.cores))
        left -= placed[-1]
    return placed


def main_bandwidth(cpu: Cpu, threads: int) -> float:
    """Bytes/s `threads` threads draw from main memory: per core × threads, capped per cluster and per chip."""
    per_core = core_bandwidth(cpu)
    total = 0.0
    clusters = cpu.clusters or [None]
    for cluster, n in zip(clusters, threads_per_cluster(cpu, threads), strict=True):
        drawn = n * per_core if per_core is not None else math.inf
        cap = cluster.bandwidth if cluster is not None and cluster.bandwidth is not None else math.inf
        total += min(drawn, cap)
    return min(total, socket_bandwidth(cpu))


def parallel_efficiency(work: int, threads: int) -> float:
    """Fraction of `threads` threads' time spent working when `work` equal items split into ⌈work/threads⌉ chunks."""
    if threads <= 1:
        return 1.0
    busiest = math.ceil(work / threads)
    return work / (busiest * threads)


def fork_join_s(cpu: Cpu, threads: int) -> float:
    """Seconds one parallel region's fork and join cost: none on one thread."""
    if threads <= 1:
        return 0.0
    return cpu.fork_join if cpu.fork_join is not None else DEFAULT_FORK_JOIN_S

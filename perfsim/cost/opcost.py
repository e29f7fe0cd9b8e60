"""OpCost: what one op costs on one device, per binding resource, checkable by hand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpCost:
    """Seconds each resource needs for an op, and the counts behind them.

    `resource_s` maps binding resources (`compute:<dtype>`, `memory:<level>`,
    `link:<name>`, `lut`, `mesh:latency`, ...) to busy seconds. Resources overlap,
    so `time_s` = the slowest resource + the fixed `overhead_s`; `bound` names the
    resource that sets it (or `overhead` when that dominates). `energy_j`: joules one chip
    spends on the op, by `energy_model` ("per-op" or "power", see perfsim.cost.energy);
    None when the spec gives neither. `detail` names what the model chose (a collective's algorithm and
    protocol, a kernel's tiling), shown beside the numbers. `calibrated` is False when a default derating stood in
    for a calibration the spec lacks (perfsim.cost.derating).
    """

    op: str
    flops: float
    bytes: float
    resource_s: dict[str, float]
    bytes_per_level: dict[str, float] = field(default_factory=dict)
    overhead_s: float = 0.0
    energy_j: float | None = None
    energy_model: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    calibrated: bool = True

    @property
    def busiest(self) -> tuple[str, float]:
        return max(self.resource_s.items(), key=lambda item: item[1])

    @property
    def time_s(self) -> float:
        return self.busiest[1] + self.overhead_s

    @property
    def bound(self) -> str:
        name, seconds = self.busiest
        return "overhead" if self.overhead_s > seconds else name

    @property
    def compute_s(self) -> float:
        return sum(s for r, s in self.resource_s.items() if r.startswith("compute:"))

    @property
    def memory_s(self) -> dict[str, float]:
        return {r.split(":", 1)[1]: s for r, s in self.resource_s.items() if r.startswith("memory:")}

    @property
    def comm_s(self) -> float:
        """Seconds of the slowest link level: the levels of a hierarchical collective pipeline."""
        return max((s for r, s in self.resource_s.items() if r.startswith("link:")), default=0.0)

    @property
    def intensity(self) -> float:
        """FLOP per byte of memory traffic (all levels)."""
        return self.flops / self.bytes if self.bytes else float("inf")

    @property
    def utilization(self) -> float:
        """Fraction of the op's time the binding resource is busy."""
        return self.busiest[1] / self.time_s if self.time_s else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "op": self.op,
            "time_s": self.time_s,
            "bound": self.bound,
            "flops": self.flops,
            "bytes": self.bytes,
            "intensity_flop_per_byte": self.intensity,
            "compute_s": self.compute_s,
            "memory_s": self.memory_s,
            "comm_s": self.comm_s,
            "overhead_s": self.overhead_s,
            "bytes_per_level": self.bytes_per_level,
            "resource_s": self.resource_s,
            "utilization": self.utilization,
            "energy_j": self.energy_j,
            "energy_model": self.energy_model,
            "calibrated": self.calibrated,
            **self.detail,
        }


def in_sequence(op: str, flops: float, kernels: Iterable[OpCost], overhead_s: float,
                detail: dict[str, str] | None = None) -> OpCost:
    """Kernels that run one after another, as one op: time_s = Σ kernel times (their own overheads left out) +
    `overhead_s`. resource_s holds each resource's busy seconds summed over the kernels, except the resource
    binding the largest share of that sum, which carries the whole sequence's time (so `bound` names it and
    time_s is exact); bytes per level are summed."""
    totals: dict[str, float] = {}
    traffic: dict[str, float] = {}
    binding: dict[str, float] = {}
    for kernel in kernels:
        for name, seconds in kernel.resource_s.items():
            totals[name] = totals.get(name, 0.0) + seconds
        for level, moved in kernel.bytes_per_level.items():
            traffic[level] = traffic.get(level, 0.0) + moved
        name, seconds = kernel.busiest
        binding[name] = binding.get(name, 0.0) + seconds
    totals[max(binding, key=binding.__getitem__)] = sum(binding.values())
    return OpCost(op, flops, sum(traffic.values()), totals, traffic, overhead_s, detail=detail or {})

"""The wafer-scale mesh cost model in WaferLLM's PLMR terms (arXiv 2502.04563): P cores, per-hop Latency,
per-core Memory, Routes per core.

A kernel runs on a P×P region of cores. Each core computes its share at the core clock, then the cores
exchange messages in synchronous rounds (counted by perfsim.cost.mesh). One kernel costs, in sequence:

  max(compute_s, sram_s)                         the core's share: FLOPs at its rate, tile bytes at its SRAM rate
  + mesh:latency = (Σ_rounds farthest hops)·L + rounds·o    per-hop latency and per-message injection overhead
  + mesh:routing = rounds · message bytes / link width      each round's message streamed through the routers

with L = hop_latency_cycles / clock and o = message_overhead_cycles / clock. A kernel needs a number of routes
(colours) in every router; needing more than `max_routes_per_core` is an error, as are tiles that do not fit a
core's SRAM (the error names the smallest region that fits). Without a region the fastest one is searched.

Algorithms: GEMM — `meshgemm` (Cannon on the interleaved layout, ≤ 2 hops a shift), `cannon_ring` (Cannon
on a plain ring, the wrap crossing the region), `summa` (row and column broadcasts); GEMV — `meshgemv`
(K-tree all-reduce, K = 2), `ring` (a plain-ring all-reduce). `auto` takes the faster of MeshGEMM and MeshGEMV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from perfsim.cost.mesh import (
    MeshCounts,
    meshgemm_counts,
    meshgemv_counts,
    plain_ring_gemm_counts,
    ring_allreduce_counts,
    summa_counts,
)
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, compute_rate
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import WaferMesh
from perfsim.ops import Attention, Elementwise, Gemm, Norm, OpBase, Softmax

Algorithm = Literal["auto", "meshgemm", "cannon_ring", "summa", "meshgemv", "ring"]
GEMM_ALGORITHMS = ("meshgemm", "cannon_ring", "summa")
GEMV_ALGORITHMS = ("meshgemv", "ring")
K_TREE = 2  # WaferLLM's two-level tree for MeshGEMV's all-reduce
ROUTES = {"meshgemm": 4, "cannon_ring": 4, "summa": 4, "meshgemv": 2 * K_TREE, "ring": 2}
"""Routes each router holds: a shifting kernel (Cannon, SUMMA's multicast) one to send and one to receive or relay
per grid dimension; a K-tree one to reduce and one to broadcast per tree level; a ring one in, one out."""


@dataclass(frozen=True)
class MeshOpCost(OpCost):
    """An OpCost whose phases run one after another: max(compute, sram), then mesh:latency, then mesh:routing.

    Every consumer reads an op's time as its busiest resource + `overhead_s`, so `overhead_s` holds the
    seconds of the phases that do not overlap the busiest one (no launch overhead on the mesh); `bound` is
    always the busiest resource. `region` is the P of the P×P region; `algorithm` the kernel; `counts` its
    messages.
    """

    region: int = 1
    algorithm: str = ""
    counts: MeshCounts | None = field(default=None, compare=False)

    @classmethod
    def of(cls, label: str, flops: float, nbytes: float, resource: dict[str, float], traffic: dict[str, float],
           region: int, algorithm: str, counts: MeshCounts | None = None, total: float | None = None) -> MeshOpCost:
        """The cost of phases `resource` taking `total` seconds (default: max of the local ones + the mesh ones)."""
        if total is None:
            total = max((v for r, v in resource.items() if not r.startswith("mesh:")), default=0.0) + sum(
                v for r, v in resource.items() if r.startswith("mesh:"))
        busiest = max(resource.values(), default=0.0)
        return cls(label, flops, nbytes, resource, traffic, max(0.0, total - busiest), region=region,
                   algorithm=algorithm, counts=counts, detail={"algorithm": algorithm, "region": f"{region}x{region}"})

    @property
    def bound(self) -> str:
        return self.busiest[0]


def _elements(fmt: str) -> float:
    """Bytes per element of a dtype or quantisation scheme."""
    return resolve_format(fmt).bits_per_element / 8


def _ceil(a: float, b: int) -> int:
    return -(-int(a) // b)


@dataclass(frozen=True)
class Kernel:
    """What one core of a P×P region does and sends: FLOPs, SRAM bytes moved, bytes resident, and messages."""

    flops_per_core: float
    sram_bytes_per_core: float
    resident_bytes_per_core: float
    counts: MeshCounts
    routes: int


def gemm_kernel(op: Gemm, p: int, algorithm: str) -> Kernel:
    """The per-core share and messages of `op` by `algorithm` on a P×P region (rows = m × batch when B is shared)."""
    rows, repeat = (op.m * op.batch, 1) if op.weight_shared else (op.m, op.batch)
    e_in, e_w = _elements(op.dtype), _elements(op.weight_dtype or op.dtype)
    e_out = _elements(op.out_dtype or op.dtype)
    mt, kt, nt = _ceil(rows, p), _ceil(op.k, p), _ceil(op.n, p)
    if algorithm in GEMV_ALGORITHMS:  # core (i, j): x block i × W tile (i, j) for every row, then column all-reduce
        counts = (meshgemv_counts(p, op.n, e_out * rows, K_TREE) if algorithm == "meshgemv"
                  else ring_allreduce_counts(p, op.n, e_out * rows))
        flops = 2.0 * rows * kt * nt
        sram = kt * nt * e_w + rows * (kt * e_in + 2 * nt * e_out)
        resident = kt * nt * e_w + rows * (kt * e_in + 2 * nt * e_out)  # W, x, y and a receive buffer
    else:  # P steps of a (mt × kt) @ (kt × nt) multiply-accumulate; A and B tiles double-buffered
        count = {"meshgemm": meshgemm_counts, "cannon_ring": plain_ring_gemm_counts, "summa": summa_counts}[algorithm]
        a, b, c = mt * kt * e_in, kt * nt * e_w, mt * nt * e_out
        # the counts size A and B tiles at one width (bytes ∝ a + b); B travels at the weight width
        counts = _bytes_scaled(count(p, rows, op.n, op.k, 1.0), (a + b) / (mt * kt + kt * nt))
        flops = 2.0 * mt * kt * nt * p
        sram = p * (a + b + 2 * c)
        resident = 2 * a + 2 * b + c
    if repeat > 1:
        counts = _repeated(counts, repeat)
    return Kernel(flops * repeat, sram * repeat, resident, counts, ROUTES[algorithm])


def _bytes_scaled(counts: MeshCounts, share: float) -> MeshCounts:
    return MeshCounts(counts.rounds, counts.messages, counts.max_hops_per_message, counts.hops,
                      counts.critical_path_hops, counts.message_bytes * share, counts.hop_bytes * share)


def _repeated(counts: MeshCounts, times: int) -> MeshCounts:
    """`times` runs of a kernel one after another."""
    return MeshCounts(counts.rounds * times, counts.messages * times, counts.max_hops_per_message,
                      counts.hops * times, counts.critical_path_hops * times, counts.message_bytes * times,
                      counts.hop_bytes * times)


def max_region(device: WaferMesh) -> int:
    """The largest square region the mesh holds."""
    return min(device.mesh.width, device.mesh.height)


def price(device: WaferMesh, label: str, flops: float, op_bytes: float, kernel: Kernel, p: int, algorithm: str,
          dtype: str) -> MeshOpCost:
    """The MeshOpCost of `kernel` on a P×P region of `device` (module docstring), FLOPs of `dtype`."""
    clock = device.clock.peak
    used, rate = compute_rate(device, "vector", dtype)
    per_core_rate = rate / device.cores
    sram = device.core_memory
    c = kernel.counts
    message = c.message_bytes / c.messages if c.messages else 0.0
    link = device.mesh.link_bits_per_cycle / 8 * clock
    resource = {
        f"compute:{used}": kernel.flops_per_core / per_core_rate,
        f"memory:{sram.name}": kernel.sram_bytes_per_core / sram.bandwidth,
        "mesh:latency": (c.critical_path_hops * device.mesh.hop_latency_cycles
                         + c.rounds * device.mesh.message_overhead_cycles) / clock,
        "mesh:routing": c.rounds * message / link,
    }
    return MeshOpCost.of(label, flops, op_bytes, resource, {sram.name: kernel.sram_bytes_per_core * p * p}, p,
                         algorithm, c)


def check_routes(device: WaferMesh, kernel: Kernel, algorithm: str) -> None:
    """Raise PerfsimError when `algorithm` needs more routes per core than the mesh's routers hold."""
    if kernel.routes > device.mesh.max_routes_per_core:
        raise PerfsimError(f"{algorithm} needs {kernel.routes} routes per core; {device.name} routers hold "
                           f"{device.mesh.max_routes_per_core}")


def fits(device: WaferMesh, kernel: Kernel) -> bool:
    return kernel.resident_bytes_per_core <= device.core_memory.capacity


def smallest_fitting_region(device: WaferMesh, resident: Callable[[int], float]) -> int | None:
    """The smallest P whose per-core bytes `resident(P)` fit a core's memory; None if no region does."""
    capacity = device.core_memory.capacity
    top = max_region(device)
    if resident(top) > capacity:
        return None
    low, high = 1, top
    while low < high:  # per-core bytes fall as P grows
        mid = (low + high) // 2
        low, high = (mid + 1, high) if resident(mid) > capacity else (low, mid)
    return low


def gemm_cost(op: Gemm, device: WaferMesh, region: int | None = None, algorithm: Algorithm = "auto",
              check_fit: bool = True) -> MeshOpCost:
    """`op` on a `region`×`region` block of `device` by `algorithm`; without a region, the fastest region.

    Raise PerfsimError if the region is larger than the mesh, the tiles do not fit a core's SRAM (naming the
    smallest region that fits), or the algorithm needs more routes than a router holds.
    """
    if algorithm == "auto":
        candidates, errors = [], []
        for choice in ("meshgemv", "meshgemm"):  # the faster of those that fit
            try:
                candidates.append(gemm_cost(op, device, region, choice, check_fit))
            except PerfsimError as error:
                errors.append(error)
        if not candidates:
            raise errors[-1]
        return min(candidates, key=lambda c: c.time_s)
    if algorithm not in GEMM_ALGORITHMS + GEMV_ALGORITHMS:
        raise PerfsimError(f"unknown mesh algorithm '{algorithm}' (choose from auto, "
                           f"{', '.join(GEMM_ALGORITHMS + GEMV_ALGORITHMS)})")
    def smallest() -> int | None:
        return smallest_fitting_region(device, lambda p: gemm_kernel(op, p, algorithm).resident_bytes_per_core)

    if region is None:
        first = smallest()
        if first is None:
            raise _no_fit(op, device, algorithm, max_region(device), None)
        regions = range(first, max_region(device) + 1)
        return min((gemm_cost(op, device, p, algorithm, check_fit) for p in regions), key=lambda c: c.time_s)
    if not 1 <= region <= max_region(device):
        raise PerfsimError(f"region {region}×{region} does not fit {device.name}'s {device.mesh.width}×"
                           f"{device.mesh.height} mesh")
    kernel = gemm_kernel(op, region, algorithm)
    check_routes(device, kernel, algorithm)
    if check_fit and not fits(device, kernel):
        raise _no_fit(op, device, algorithm, region, smallest())
    return price(device, op.label, op.flops, op.bytes, kernel, region, algorithm, op.compute_dtype)


def _no_fit(op: OpBase, device: WaferMesh, algorithm: str, region: int, smallest: int | None) -> PerfsimError:
    where = (f"the smallest region that fits is {smallest}×{smallest}" if smallest
             else f"no region of {device.name} fits it")
    return PerfsimError(f"{op.label} by {algorithm} does not fit a {region}×{region} region of {device.name}: its "
                        f"tiles exceed a core's {device.core_memory.capacity / 1024:g} KiB; {where}")


def attention_gemms(op: Attention) -> list[Gemm]:
    """Attention as the two products WaferLLM's decode runs on the mesh: scores q·Kᵀ and output p·V, all heads
    flattened (q_len × heads·d against kv_len keys); the causal mask is not exploited."""
    width = op.heads * op.head_dim
    kv = op.kv_dtype or op.dtype
    return [Gemm(name="scores", m=op.q_len, k=width, n=op.kv_len, batch=op.batch, dtype=op.dtype, weight_dtype=kv),
            Gemm(name="output", m=op.q_len, k=op.kv_len, n=width, batch=op.batch, dtype=op.dtype, weight_dtype=kv)]


def vector_cost(op: OpBase, device: WaferMesh, p: int, reduce_rows: int = 0) -> MeshOpCost:
    """An op spread evenly over P×P cores (norms, activations, softmax); `reduce_rows` rows all-reduce one scalar
    each along a grid row (a norm's sum of squares, a softmax's max and sum) by the K-tree."""
    dtype = getattr(op, "dtype", "fp32")
    counts = meshgemv_counts(p, p, _elements(dtype) * reduce_rows, K_TREE) if reduce_rows else _NO_MESSAGES
    kernel = Kernel(op.flops / (p * p), op.bytes / (p * p), op.bytes / (p * p), counts, ROUTES["meshgemv"])
    return price(device, op.label, op.flops, op.bytes, kernel, p, "local" if not reduce_rows else "meshgemv",
                 op.compute_dtype)


_NO_MESSAGES = MeshCounts(0, 0, 0, 0, 0, 0.0, 0.0)


def _combine(label: str, parts: list[MeshOpCost], flops: float, op_bytes: float) -> MeshOpCost:
    """Kernels run one after another, reported as one op: every resource's seconds and the times added."""
    resource: dict[str, float] = {}
    for part in parts:
        for name, seconds in part.resource_s.items():
            resource[name] = resource.get(name, 0.0) + seconds
    traffic = {k: sum(p.bytes_per_level.get(k, 0.0) for p in parts) for k in parts[0].bytes_per_level}
    return MeshOpCost.of(label, flops, op_bytes, resource, traffic, parts[0].region,
                         "+".join(p.algorithm for p in parts), total=sum(p.time_s for p in parts))


def op_cost(op: OpBase, device: WaferMesh, region: int | None = None, algorithm: Algorithm = "auto",
            check_fit: bool = True) -> MeshOpCost:
    """Any op the wafer model prices, on a P×P region (searched for GEMMs when not given).

    Raise PerfsimError for ops it does not model (MoE, table lookups, convolutions, collectives).
    """
    if isinstance(op, Gemm):
        return gemm_cost(op, device, region, algorithm, check_fit)
    p = region or max_region(device)
    if isinstance(op, Attention):
        parts = [gemm_cost(g, device, p, algorithm, check_fit=False) for g in attention_gemms(op)]
        softmax = Softmax(name="softmax", rows=op.batch * op.q_len, cols=op.kv_len, dtype=op.dtype,
                          variant="two_pass", write_allocate=False)
        parts.append(vector_cost(softmax, device, p, reduce_rows=2 * op.batch * op.q_len))
        return _combine(op.label, parts, op.flops, op.bytes)
    if isinstance(op, Norm):
        return vector_cost(op, device, p, reduce_rows=op.rows)
    if isinstance(op, Softmax):
        return vector_cost(op, device, p, reduce_rows=2 * op.rows)
    if isinstance(op, Elementwise):
        return vector_cost(op, device, p)
    raise PerfsimError(f"the wafer-mesh model does not price {op.kind} ops yet (needs its mesh mapping)")


def wafer_mesh_cost(op: OpBase, device: WaferMesh, cache: Cache = "cold") -> MeshOpCost:
    """perfsim.cost.cost's entry for `device.kind == "wafer_mesh"`: the op on its fastest region (GEMMs) or the
    whole mesh (other ops). Weights are resident in SRAM, so `cache` does not change the price."""
    del cache
    return op_cost(op, device)

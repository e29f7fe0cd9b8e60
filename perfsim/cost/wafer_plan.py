"""A whole model on a wafer-scale mesh: layers placed over P×P regions with their weights resident in SRAM,
the KV cache placed beside them, and every op of a step priced on its region (perfsim.cost.wafer_mesh).

Placement: the mesh holds ⌊width/P⌋·⌊height/P⌋ regions of P×P cores; the layers are split evenly over them
(⌈layers / regions⌉ per region), each layer's weight tiles resident on every core of its region. Embedding
and LM head live on the cores left over. A step runs the layers one after another (batch-1 decode is a chain).

KV cache: a core of grid column c holds its ⌈kv_width/P⌉ share of the keys and values of the tokens mapped to
column c. `shift` (WaferLLM) moves one token's share to the neighbouring column each step, so all P columns
fill evenly and the cache holds P × (free bytes / bytes per token) tokens; each attention pays one 1-hop round.
`concat` appends every new token to the tail column: the prompt is spread evenly, but the decode can only grow
until the tail column's cores are full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache
from perfsim.cost.wafer_mesh import MeshOpCost, gemm_kernel, max_region, op_cost
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import WaferMesh
from perfsim.models.params import embedding_params, head_params
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.models.trace import HEAD_OPS, Trace, build_trace
from perfsim.ops import Attention, Gemm, OpBase

KvPolicy = Literal["shift", "concat"]


@dataclass(frozen=True)
class WaferPlan:
    """Where a model sits on the wafer. Bytes are per core of a layer region.

    region: P of the P×P regions; regions: regions holding layers; layers_per_region: layers stacked on each;
    weight_bytes / buffer_bytes / kv_bytes: what a core holds for its layers (KV at the step's context);
    kv_token_bytes: one token's K and V share on one core, for all its layers; capacity: a core's memory;
    prompt_len: the prompt tokens, spread evenly by prefill (the rest of kv_len was decoded).
    """

    region: int
    regions: int
    layers_per_region: int
    weight_bytes: float
    buffer_bytes: float
    kv_bytes: float
    kv_token_bytes: float
    capacity: float
    kv_policy: KvPolicy
    kv_len: int
    prompt_len: int

    @property
    def free_bytes(self) -> float:
        """Bytes a core has for KV once its weights and buffers are placed."""
        return self.capacity - self.weight_bytes - self.buffer_bytes

    def max_tokens(self, policy: KvPolicy | None = None) -> int:
        """The longest sequence (prompt + decoded tokens) the KV placement holds."""
        per_core = int(self.free_bytes // self.kv_token_bytes) if self.kv_token_bytes else 0
        if (policy or self.kv_policy) == "shift":
            return self.region * per_core
        return self.prompt_len + max(0, per_core - -(-self.prompt_len // self.region))

    def cost(self, op: OpBase, device: WaferMesh, cache: Cache = "cold") -> MeshOpCost:
        """`op` priced on this plan's region (weights resident, so `cache` does not matter)."""
        del cache
        priced = op_cost(op, device, self.region, check_fit=False)
        if isinstance(op, Attention) and self.kv_policy == "shift":
            return _with_shift(priced, device, self.kv_token_bytes / self.layers_per_region * op.batch)
        return priced


def _with_shift(priced: MeshOpCost, device: WaferMesh, nbytes: float) -> MeshOpCost:
    """`priced` plus the KV shift: one round of 1-hop messages of `nbytes` (every column to its neighbour)."""
    clock, mesh = device.clock.peak, device.mesh
    extra = {"mesh:latency": (mesh.hop_latency_cycles + mesh.message_overhead_cycles) / clock,
             "mesh:routing": nbytes / (mesh.link_bits_per_cycle / 8 * clock)}
    resource = {k: v + extra.get(k, 0.0) for k, v in priced.resource_s.items()}
    return MeshOpCost.of(priced.op, priced.flops, priced.bytes, resource, priced.bytes_per_level, priced.region,
                         priced.algorithm + "+kv_shift", total=priced.time_s + sum(extra.values()))


def _bytes(fmt: str) -> float:
    return resolve_format(fmt).bits_per_element / 8


SEARCH_POINTS = 8


def plan_wafer(r: Resolved, region: int | None = None, kv_policy: KvPolicy = "shift") -> WaferPlan:
    """Place `r`'s model on its wafer: the given region, or the one with the fastest step among those that fit.

    The search is coarse to fine: SEARCH_POINTS fitting sizes evenly spread, then as many around the fastest
    of them, until neighbours are compared (the step time is unimodal in the region up to rounding: compute
    shrinks as 1/P², hop latency grows as P). Raise PerfsimError if the chip is not a wafer mesh, the layers'
    tiles and KV cache do not fit a core (naming the region sizes that fit), or the embedding and head do
    not fit the cores left.
    """
    chip = r.chip
    if not isinstance(chip, WaferMesh) or r.system is not None:
        raise PerfsimError(f"plan_wafer needs one wafer-scale chip; {chip.name} is a {chip.kind}")
    if region is not None:
        return _plan(r, chip, region, kv_policy, strict=True)
    trace = build_trace(r)
    plans = [p for size in range(1, max_region(chip) + 1) if (p := _plan(r, chip, size, kv_policy, False, trace))]
    if not plans:
        raise PerfsimError(f"{r.model.name} does not fit on {chip.name} at any region size")
    seconds: dict[int, float] = {}

    def step_s(i: int) -> float:
        if i not in seconds:
            seconds[i] = step_seconds(r, plans[i], trace)
        return seconds[i]

    lo, hi = 0, len(plans) - 1
    while True:
        stride = max(1, (hi - lo) // SEARCH_POINTS)
        best = min([*range(lo, hi + 1, stride), hi], key=step_s)
        if stride == 1:
            return plans[best]
        lo, hi = max(lo, best - stride), min(hi, best + stride)


def _plan(r: Resolved, chip: WaferMesh, p: int, kv_policy: KvPolicy, strict: bool,
          trace: Trace | None = None) -> WaferPlan | None:
    if not 1 <= p <= max_region(chip):
        raise PerfsimError(f"region {p}×{p} does not fit {chip.name}'s {chip.mesh.width}×{chip.mesh.height} mesh")
    model = r.model
    regions = min(model.layers, (chip.mesh.width // p) * (chip.mesh.height // p))
    per_region = -(-model.layers // regions)
    weights, buffers = _layer_tiles(trace or build_trace(r), p)
    kv_token = per_region * 2 * -(-(model.layer_kv_heads(0) * model.dim_per_head) // p) * _bytes(r.kv_dtype)
    seqs = r.seqs_per_replica
    capacity = chip.core_memory.capacity
    plan = WaferPlan(p, regions, per_region, weights * per_region / model.layers, buffers,
                     kv_token * seqs * -(-r.kv_len // p), kv_token * seqs, capacity, kv_policy, r.kv_len,
                     min(r.scenario.prompt_len, r.kv_len))
    problem = _misfit(r, chip, plan)
    if problem and strict:
        trace = trace or build_trace(r)
        sizes = [q for q in range(1, max_region(chip) + 1) if _plan(r, chip, q, kv_policy, False, trace)]
        raise PerfsimError(f"{problem}; region sizes that fit: {_spans(sizes)}" if sizes
                           else f"{problem}; no region size fits")
    return None if problem else plan


def _spans(sizes: list[int]) -> str:
    """Ascending sizes as runs: [98, 99, 100, 190, 191] -> '98–100, 190–191'.

    The sizes that fit are not one interval: the mesh holds ⌊width/P⌋·⌊height/P⌋ regions, a count that drops
    in steps as P grows, and each drop stacks more layers on every core.
    """
    runs: list[list[int]] = []
    for size in sizes:
        if runs and size == runs[-1][1] + 1:
            runs[-1][1] = size
        else:
            runs.append([size, size])
    return ", ".join(f"{low}–{high}" if high > low else str(low) for low, high in runs)


def _misfit(r: Resolved, chip: WaferMesh, plan: WaferPlan) -> str | None:
    """Why `plan` does not fit, or None."""
    p = plan.region
    if plan.weight_bytes + plan.buffer_bytes + plan.kv_bytes > plan.capacity:
        width, height = chip.mesh.width, chip.mesh.height
        return (f"{r.model.name} on {p}×{p} regions of {chip.name}: its {width}×{height} mesh holds "
                f"{width // p}×{height // p} of them, so {plan.regions} region(s) hold {plan.layers_per_region} "
                f"layer(s) each and a core needs "
                f"{(plan.weight_bytes + plan.buffer_bytes + plan.kv_bytes) / 1024:.1f} KiB (weights "
                f"{plan.weight_bytes / 1024:.1f}, buffers {plan.buffer_bytes / 1024:.1f}, KV "
                f"{plan.kv_bytes / 1024:.1f}) of its {plan.capacity / 1024:g} KiB")
    if r.kv_len > plan.max_tokens():
        return (f"{r.kv_len} tokens exceed the {plan.max_tokens()} the {plan.kv_policy} KV placement holds on "
                f"{p}×{p} regions of {chip.name}")
    left = chip.cores - plan.regions * p * p
    table = (embedding_params(r.model) + head_params(r.model)) * _bytes(r.model.embedding_dtype)
    if table > left * plan.capacity:
        return (f"{r.model.name}'s embedding and LM head ({table / 2**30:.2f} GiB) do not fit the {left} cores "
                f"{plan.regions} region(s) of {p}×{p} leave on {chip.name}")
    return None


def _layer_tiles(trace: Trace, p: int) -> tuple[float, float]:
    """(weight tile bytes per core summed over all layers, the largest kernel's non-weight bytes per core)."""
    weights = buffers = 0.0
    for t in trace.ops:
        if not isinstance(t.op, Gemm) or t.op.label in HEAD_OPS:
            continue
        kernel = gemm_kernel(t.op, p, "meshgemv" if t.op.m * t.op.batch == 1 else "meshgemm")
        tile = -(-t.op.k // p) * -(-t.op.n // p) * _bytes(t.op.weight_dtype or t.op.dtype)
        weights += tile * t.repeat
        buffers = max(buffers, kernel.resident_bytes_per_core - tile)
    return weights, buffers


def step_costs(r: Resolved, plan: WaferPlan, trace: Trace | None = None) -> list[OpCost]:
    """Every op of `r`'s step priced on `plan`'s region, in trace order."""
    return [plan.cost(t.op, r.chip) for t in (trace or build_trace(r)).ops]


def step_seconds(r: Resolved, plan: WaferPlan, trace: Trace | None = None) -> float:
    """One step's seconds: the ops one after another, each layer's ops `repeat` times."""
    trace = trace or build_trace(r)
    return sum(c.time_s * t.repeat for c, t in zip(step_costs(r, plan, trace), trace.ops, strict=True))


def wafer_step(scenario: Scenario | Resolved, region: int | None = None, kv_policy: KvPolicy = "shift"):
    """The StepEstimate of `scenario` on its wafer with every op priced on the plan's region (what
    perfsim.models.step.estimate_step returns once it dispatches wafer meshes to plan_wafer)."""
    from perfsim.models.footprint import footprint
    from perfsim.models.step import StepEstimate

    r = scenario if isinstance(scenario, Resolved) else resolve(scenario)
    trace = build_trace(r)
    return StepEstimate(r, trace, step_costs(r, plan_wafer(r, region, kv_policy), trace), footprint(r))

"""The FPGA cost model: a fixed accelerator design's MAC array, attention and vector units, buffers and DDR ports.

Mechanism (the design's fields: perfsim.hardware.fpga.Design; the shared roofline helpers for clock and DDR):
- linear layers (Gemm; an MoE as its gate and one linear pair per expert touched) run on the rows × cols MAC
  array; `linear_cycles` counts the cycles of one M×K×N layer for the design's dataflow:
  row_vector (Edge-MoE's compute_linear: one row's `rows` inputs times a rows × cols weight tile per cycle,
  pipelined over rows × ⌈K/rows⌉ × ⌈N/cols⌉, filled once):     M·⌈K/rows⌉·⌈N/cols⌉ + ⌈log2 rows⌉ + 2
  output_stationary (a systolic array holding a rows × cols output tile while K streams through; operands
  enter skewed, so the far corner starts rows + cols − 2 cycles late; the drain overlaps the next tile):
                                                                 ⌈M/rows⌉·⌈N/cols⌉·(K + rows + cols − 2)
- the weights of a linear layer are loaded once into one of two ping/pong buffers of `weight_buffer` bytes
  (double-buffered: the load overlaps compute) and reused by every row; a layer whose weights exceed the buffer
  is run in ⌈weights / buffer⌉ chunks, its inputs re-streamed for each;
- attention runs on its own unit: `attention_queries` queries are held while every key streams past
  (`vector_lanes` dimensions per cycle), then every value (Edge-MoE's reordering: one key or value word per cycle
  whatever the parallelism — constant bandwidth); the single-pass softmax keeps a running max and sum in the
  same pipeline, so it adds no pass; unfused, the scores are written to DDR once and read back once;
- softmax, norm and elementwise ops (GELU's approximation, residual adds) take `vector_lanes` elements per cycle;
- DDR traffic: each stream of a step (weights, inputs, outputs; queries, keys, scores) has its own AXI port
  of width_bits / 8 × clock bytes/s; all share the DDR's bandwidth. Streams overlap compute (dataflow); an op's
  steps (attention's two passes, an MoE's gate and experts) run one after another, so the op's compute is the
  sum of its steps' cycles, its memory time the sum of its steps' max(busiest port, DDR), and it takes the
  larger sum (exact when every step is bound by the same resource);
- no per-op overhead (the design starts each layer from its own control FSM); energy comes from the spec's
  power model (board power × busy time).
Ops the design has no unit for (convolutions, LUT GEMMs) fall back to the roofline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, clock_scale, level_bandwidth, roofline
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware.fpga import Design, Fpga
from perfsim.ops import SOFTMAX_PASSES, Attention, Elementwise, Gemm, MoE, Norm, OpBase, Softmax


@dataclass(frozen=True)
class Work:
    """One op's counts on the design: cycles on the array and on the attention / vector units, and per step
    run one after another, the bytes of its busiest stream (`port_bytes`, summed) and of all streams."""

    array_cycles: float = 0.0
    unit_cycles: float = 0.0
    port_bytes: float = 0.0
    ddr_bytes: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(self.array_cycles + other.array_cycles, self.unit_cycles + other.unit_cycles,
                    self.port_bytes + other.port_bytes, self.ddr_bytes + other.ddr_bytes)


def step(streams: tuple[float, ...], array_cycles: float = 0.0, unit_cycles: float = 0.0) -> Work:
    """One step whose `streams` (bytes each) run concurrently, each on its own port, with its compute."""
    return Work(array_cycles, unit_cycles, max(streams), sum(streams))


def fpga_cost(op: OpBase, device: Fpga, cache: Cache = "cold") -> OpCost:
    """What `op` costs on `device`'s accelerator design (module doc). Raise PerfsimError for a non-FPGA chip."""
    if device.kind != "fpga":
        raise PerfsimError(f"fpga_cost prices FPGA designs; {device.name} is a {device.kind}")
    work = op_work(op, device.design)
    if work is None:
        return roofline(op, device, cache)
    design, hz = device.design, device.clock.peak * clock_scale(device)
    resource: dict[str, float] = {}
    if work.array_cycles:
        resource[f"compute:{design.weight_dtype}"] = work.array_cycles / hz
    if work.unit_cycles:
        resource[f"compute:{design.activation_dtype}"] = work.unit_cycles / hz
    ddr = device.main
    resource[f"memory:{ddr.name}"] = max(work.port_bytes / port_bandwidth(device),
                                         work.ddr_bytes / level_bandwidth(device, ddr))
    return OpCost(op.label, op.flops, work.ddr_bytes, resource, {ddr.name: work.ddr_bytes},
                  detail={"dataflow": design.dataflow, "cycles": f"{work.array_cycles + work.unit_cycles:.0f}"})


def port_bandwidth(device: Fpga) -> float:
    """Bytes/s one AXI port moves: width_bits / 8 per cycle at the design clock."""
    return device.design.axi.width_bits / 8 * device.clock.peak


def op_work(op: OpBase, design: Design) -> Work | None:
    """The design's counts for `op`; None for an op it has no unit for."""
    if isinstance(op, Gemm):
        return linear_work(op, design)
    if isinstance(op, MoE):
        return moe_work(op, design)
    if isinstance(op, Attention):
        return attention_work(op, design)
    if isinstance(op, Softmax | Norm | Elementwise):
        return vector_work(op, design)
    return None


def linear_cycles(m: int, k: int, n: int, design: Design) -> int:
    """Cycles of one M×K×N linear layer on the design's MAC array (module doc: the two dataflows)."""
    rows, cols = design.rows, design.cols
    if design.dataflow == "row_vector":
        return m * -(-k // rows) * -(-n // cols) + math.ceil(math.log2(rows)) + 2
    return -(-m // rows) * -(-n // cols) * (k + rows + cols - 2)


def _bytes(elements: float, fmt: str) -> float:
    return elements * resolve_format(fmt).bits_per_element / 8


def linear_work(op: Gemm, design: Design) -> Work:
    """A Gemm's array cycles and streams: weights once per batch copy, inputs once per weight-buffer chunk."""
    a, b, c = op.operands()
    chunks = max(1, math.ceil(b.bytes / (1 if op.weight_shared else op.batch) / design.weight_buffer))
    return step((b.bytes, a.bytes * chunks, c.bytes), array_cycles=op.batch * linear_cycles(op.m, op.k, op.n, design))


def moe_work(op: MoE, design: Design) -> Work:
    """An MoE layer as Edge-MoE runs it: the gate, then expert by expert (weights loaded per expert touched)."""
    if op.shards > 1:
        raise PerfsimError("the FPGA model runs an MoE layer on one chip (ep = expert_tp = 1)")
    touched = max(1, round(op.experts_touched))
    rows = -(-op.tokens * op.top_k // touched)  # tokens per expert, balanced
    weights = op.weight_dtype or op.dtype
    gate = Gemm(m=op.tokens, k=op.hidden, n=op.experts, dtype=op.dtype, weight_dtype=weights, weight_shared=True)
    up_width = op.expert_ffn * (2 if op.gated else 1)
    up = Gemm(m=rows, k=op.hidden, n=up_width, dtype=op.dtype, weight_dtype=weights, weight_shared=True)
    down = Gemm(m=rows, k=op.expert_ffn, n=op.hidden, dtype=op.dtype, weight_dtype=weights, weight_shared=True)
    expert = linear_work(up, design) + linear_work(down, design)
    total = linear_work(gate, design)
    for _ in range(touched):
        total += expert
    if op.shared_experts:
        shared = op.shared_experts * (op.shared_ffn or op.expert_ffn)
        total += linear_work(up.model_copy(update={"m": op.tokens, "n": shared * (2 if op.gated else 1)}), design)
        total += linear_work(down.model_copy(update={"m": op.tokens, "k": shared}), design)
    return total


def attention_cycles(op: Attention, design: Design) -> int:
    """Cycles of the QKᵀ and PV passes: each streams every key (value) once per group of held queries."""
    groups = -(-op.q_len // design.attention_queries)
    words = -(-op.heads * op.head_dim // design.vector_lanes)
    return 2 * op.batch * groups * op.kv_len * words


def attention_work(op: Attention, design: Design) -> Work:
    """Attention on the attention unit; K and V re-streamed per query group, scores once out and back if unfused."""
    q, k, v, o = op.operands()[:4]
    groups = -(-op.q_len // design.attention_queries)
    scores = 0.0 if op.fused else _bytes(op.scores, op.dtype)
    half = attention_cycles(op, design) / 2
    return (step((q.bytes, k.bytes * groups, scores), unit_cycles=half)  # QKᵀ, running max and sum, scores out
            + step((scores, v.bytes * groups, o.bytes), unit_cycles=half))  # scores back, normalised, times V


def vector_work(op: Softmax | Norm | Elementwise, design: Design) -> Work:
    """An elementwise-like op at `vector_lanes` elements per cycle, once per pass over its input; never faster than
    the fabric's datasheet compute, 2 · rows · cols FLOP per cycle (an op of many FLOPs per element, beyond the few
    a lane's fixed-function pipeline holds)."""
    if isinstance(op, Softmax):
        elements, passes = op.elements, SOFTMAX_PASSES[op.variant][0]
    elif isinstance(op, Norm):
        elements, passes = op.rows * op.cols, 1
    else:
        elements, passes = op.elements, 1
    cycles = max(passes * -(-elements // design.vector_lanes), math.ceil(op.flops / (2 * design.macs_per_cycle)))
    return step(tuple(o.traffic for o in op.operands()), unit_cycles=cycles)

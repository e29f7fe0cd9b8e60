"""One offloaded iteration as counts: which ops run where, and the bytes each placement moves.

An iteration is one forward pass of the scenario's batch (its tokens: batch × q_len) through every layer. Each
op of the step's trace runs on the GPU, except decode attention placed on the CPU and the KV-cache append where
the cache lives in host DRAM: there the new keys and values cross the link GPU→host in the cache's format and
are written into the host cache (`kv_write_bytes`), not appended on the GPU (an fp8 cache's scaling, 1 FLOP an
element, is not counted). Per layer, the host link carries
host-placed weights and the CPU attention's outputs host→GPU, and its inputs (queries, new keys and values; in
prefill with a host KV cache, the new keys and values) GPU→host. Host DRAM serves the streamed weights, the KV
cache the CPU attention reads and every write of new keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.models.params import embedding_params, head_params, layer_params
from perfsim.models.scenario import Resolved
from perfsim.models.trace import HEAD_OPS, TraceOp, build_trace
from perfsim.offload.placement import Offload, is_expert_op
from perfsim.ops import Attention, KvAppend, MoE, OpBase

LAYER_START = "attn_norm"
"""The first op of every layer in a trace (perfsim.models.trace)."""


def nbytes(elements: float, fmt: str) -> float:
    return elements * resolve_format(fmt).bits_per_element / 8


def streamed_bytes(op: OpBase) -> float:
    """Weight bytes the op's layer must hold to run it: every routed expert of an MoE layer (the host streams them
    all, routing being unknown beforehand), its shared experts and router; a GEMM's weight operand."""
    if isinstance(op, MoE):
        fmt = op.weight_dtype or op.dtype
        return (nbytes(op.experts * op.expert_params + op.shared_params, fmt) / op.shards
                + nbytes(op.hidden * op.experts, op.dtype))
    return sum(o.bytes for o in op.operands() if o.weight)


def on_cpu(op: OpBase, offload: Offload, phase: str) -> bool:
    """Whether `op` runs on the host CPU: decode attention placed there."""
    return isinstance(op, Attention) and phase == "decode" and offload.attention == "cpu"


def appends_on_host(op: OpBase, offload: Offload) -> bool:
    """Whether `op` is a KV-cache append into a host-DRAM cache: its write lands there, not in GPU memory."""
    return isinstance(op, KvAppend) and offload.kv == "host"


def on_host(op: OpBase, offload: Offload) -> bool:
    """Whether `op`'s weights live in host DRAM (and stream to the GPU)."""
    return (offload.experts if is_expert_op(op.label) else offload.dense) == "host"


@dataclass(frozen=True)
class Layer:
    """One layer's ops on each side and what crosses: `repeat` identical layers in a row."""

    gpu_before: tuple[OpBase, ...]  # up to the attention (norm, qkv)
    cpu: tuple[OpBase, ...]  # decode attention on the CPU (empty when it runs on the GPU)
    gpu_after: tuple[OpBase, ...]  # the rest (o_proj, norm, experts, shared FFN)
    streamed_bytes: float  # host-placed weights, host → GPU
    h2d_bytes: float  # streamed weights + CPU attention outputs, host → GPU
    d2h_bytes: float  # CPU attention inputs, or prefill's new keys and values, GPU → host
    kv_write_bytes: float  # new keys and values appended to a host KV cache
    repeat: int = 1

    @property
    def gpu_ops(self) -> tuple[OpBase, ...]:
        return self.gpu_before + self.gpu_after


@dataclass(frozen=True)
class Iteration:
    """Every layer of one iteration, plus the ops outside the layers (embedding, head) on the GPU."""

    resolved: Resolved
    offload: Offload
    layers: list[Layer]
    outside: list[OpBase] = field(default_factory=list)
    outside_streamed_bytes: float = 0.0

    @property
    def tokens(self) -> int:
        """Tokens the iteration processes (all micro-batches)."""
        r = self.resolved
        return r.tokens_per_replica * r.scenario.micro_batches

    def total(self, what: str) -> float:
        """Σ over layers (× repeat) of a Layer byte field."""
        return sum(getattr(layer, what) * layer.repeat for layer in self.layers)

    @property
    def gpu_flops(self) -> float:
        return (sum(op.flops for layer in self.layers for op in layer.gpu_ops for _ in range(layer.repeat))
                + sum(op.flops for op in self.outside))

    @property
    def cpu_flops(self) -> float:
        return sum(op.flops * layer.repeat for layer in self.layers for op in layer.cpu)

    @property
    def kv_read_bytes(self) -> float:
        """Bytes the CPU attention reads and writes in host DRAM (its KV cache, queries and outputs)."""
        return sum(op.bytes * layer.repeat for layer in self.layers for op in layer.cpu)

    @property
    def link_bytes(self) -> float:
        """The busier direction of the host link over the iteration."""
        return max(self.total("h2d_bytes") + self.outside_streamed_bytes, self.total("d2h_bytes"))

    @property
    def dram_bytes(self) -> float:
        """Host DRAM traffic: weights read for the link, the CPU attention's bytes, new keys and values written."""
        return (self.total("streamed_bytes") + self.outside_streamed_bytes + self.kv_read_bytes
                + self.total("kv_write_bytes"))


def iteration(r: Resolved, offload: Offload) -> Iteration:
    """The ops and crossings of one micro-batch's pass (`r` resolved per micro-batch)."""
    trace = build_trace(r)
    phase = r.scenario.phase
    layers, outside, outside_streamed = [], [], 0.0
    run: list[TraceOp] = []
    for top in [*trace.ops, None]:
        if run and (top is None or top.op.label == LAYER_START or top.op.label in HEAD_OPS):
            layers.append(_layer(r, offload, phase, run))
            run = []
        if top is None:
            break
        if top.op.label in HEAD_OPS or (not layers and not run and top.op.label != LAYER_START):
            outside.append(top.op)
            outside_streamed += streamed_bytes(top.op) if on_host(top.op, offload) else 0.0
        else:
            run.append(top)
    return Iteration(r, offload, layers, outside, outside_streamed)


def _layer(r: Resolved, offload: Offload, phase: str, ops: list[TraceOp]) -> Layer:
    before: list[OpBase] = []
    cpu: list[OpBase] = []
    after: list[OpBase] = []
    streamed = h2d = d2h = kv_write = 0.0
    for top in ops:
        op = top.op
        if on_host(op, offload):
            streamed += streamed_bytes(op)
        if appends_on_host(op, offload):  # the new keys and values, in the cache's format, cross and land there
            new_kv = sum(o.bytes * o.writes for o in op.operands())
            d2h += new_kv
            kv_write += new_kv
            continue
        if on_cpu(op, offload, phase):
            assert isinstance(op, Attention)
            cpu.append(op)
            d2h += nbytes(op.batch * op.heads * op.q_len * op.head_dim, op.dtype)  # the queries
            h2d += nbytes(op.batch * op.heads * op.q_len * op.head_dim, op.dtype)  # the outputs
            continue
        (after if cpu or any(isinstance(o, Attention) for o in before) else before).append(op)
    return Layer(tuple(before), tuple(cpu), tuple(after), streamed, h2d + streamed, d2h, kv_write, ops[0].repeat)


def host_weight_bytes(r: Resolved, offload: Offload) -> float:
    """Bytes of every weight placed in host DRAM (all layers, every expert)."""
    model = r.model
    wbytes = resolve_format(r.weight_dtype).bits_per_element / 8
    ebytes = resolve_format(model.embedding_dtype).bits_per_element / 8
    total = 0.0
    for first, count in model.layer_runs(0, model.layers):
        p = layer_params(model, first)
        expert = (p.experts + p.shared + p.router) * wbytes  # the router streams with its experts
        dense = (p.attention + p.dense_ffn + p.norms) * wbytes
        total += count * ((expert if offload.experts == "host" else 0.0) + (dense if offload.dense == "host" else 0.0))
    if offload.dense == "host":
        total += (embedding_params(model) + head_params(model)) * ebytes
    return total


def kv_bytes_per_token(r: Resolved) -> float:
    """KV-cache bytes one token holds over every layer."""
    model = r.model
    return sum(2 * model.layer_kv_heads(i) * model.dim_per_head for i in range(model.layers)) \
        * resolve_format(r.kv_dtype).bits_per_element / 8


def check_single_chip(r: Resolved) -> None:
    """Raise PerfsimError unless `r` runs on one chip (the offloaded model covers one GPU and its host)."""
    if r.par.devices != 1:
        raise PerfsimError(f"offload models one GPU and its host; {r.par.devices} devices requested")

"""One chip's share of a training step, op by op: each forward op of the inference trace (the head over every
token, plus the loss), its backward ops (perfsim.training.backward) and, with full recompute, the layer's
forward again; costed once per distinct op (runs of identical layers fold into `count`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from perfsim.cost import OpCost, cost
from perfsim.hardware import Device, System
from perfsim.models.scenario import Resolved
from perfsim.models.trace import HEAD_OPS, build_trace
from perfsim.ops import Collective, Gemm, MoE, Norm, OpBase, Softmax
from perfsim.training.backward import backward_ops

FP8 = "fp8_e4m3"
PASSES = ("forward", "backward", "recompute")


@dataclass
class Segment:
    """A run of `count` identical layers (`layer`: the first's index) or a one-off group (embedding, head) on one
    chip of a stage: its seconds, FLOPs and per-op rows for each pass, per micro-batch and per layer."""

    name: str
    count: int
    layer: int | None
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PASSES, 0.0))
    flops: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PASSES, 0.0))
    rows: list[tuple[str, str, OpCost]] = field(default_factory=list)  # (pass, op name, cost)

    def add(self, phase: str, op: OpBase, c: OpCost) -> None:
        self.seconds[phase] += c.time_s
        if not isinstance(op, Collective):
            self.flops[phase] += op.flops
        self.rows.append((phase, op.label, c))

    @property
    def backward_s(self) -> float:
        """A layer's backward as it runs: the recomputed forward, then the gradients."""
        return self.seconds["backward"] + self.seconds["recompute"]


@dataclass
class StageWork:
    """One stage's segments in forward order, the send into it (None on the first stage), and the seconds per
    micro-batch that ZeRO-3's weight all-gathers and gradient reduce-scatters leave exposed in each pass."""

    segments: list[Segment]
    send: OpCost | None
    exposed_s: tuple[float, float] = (0.0, 0.0)

    def total(self, phase: str) -> float:
        return sum(s.count * s.seconds[phase] for s in self.segments)

    @property
    def forward_s(self) -> float:
        return self.total("forward") + self.exposed_s[0]

    @property
    def backward_s(self) -> float:
        return self.total("backward") + self.total("recompute") + self.exposed_s[1]

    def flops(self, phase: str) -> float:
        return sum(s.count * s.flops[phase] for s in self.segments)


def training_head(r: Resolved) -> list[OpBase]:
    """The last stage's head in training: final norm, LM head and the cross-entropy over every token."""
    model, act, t = r.model, r.scenario.activation_dtype, r.tokens_per_replica
    vocab_local = -(-model.vocab // r.par.tp)
    return [Norm(name="final_norm", rows=t, cols=model.hidden, norm=model.norm, dtype=act),
            Gemm(name="lm_head", m=t, n=vocab_local, k=model.hidden, dtype=act, weight_dtype=model.embedding_dtype,
                 weight_shared=True),
            Softmax(name="loss", rows=t, cols=vocab_local, dtype=act, variant="two_pass", write_allocate=False)]


def in_precision(op: OpBase, precision: str) -> OpBase:
    """`op` with its matrix work in fp8 (inputs and weights; 16-bit outputs) when `precision` is fp8."""
    if precision != "fp8":
        return op
    if isinstance(op, Gemm):
        return op.model_copy(update={"dtype": FP8, "weight_dtype": FP8, "out_dtype": "bf16"})
    if isinstance(op, MoE):
        return op.model_copy(update={"dtype": FP8, "weight_dtype": FP8})
    return op


def stage_work(r: Resolved, hardware: Device | System, precision: str, recompute: bool) -> list[StageWork]:
    """Every stage's segments, costed (module doc)."""
    memo: dict[OpBase, OpCost] = {}

    def priced(op: OpBase) -> OpCost:
        if op not in memo:
            memo[op] = cost(op, hardware)
        return memo[op]

    stages = [StageWork([], None) for _ in range(r.par.pp)]
    for t in build_trace(r, inference=False).ops:
        work, name = stages[t.stage], t.op.label
        if name == "pp_send":
            work.send = priced(t.op)
            continue
        if name in HEAD_OPS:
            if name != "final_norm":
                continue
            segment, ops = Segment("head", 1, None), training_head(r)
            work.segments.append(segment)
        else:
            if name == "embedding" or name == "attn_norm":
                layer = None if name == "embedding" else t.layer
                work.segments.append(Segment(name if layer is None else f"layers {layer}+", t.repeat, layer))
            segment, ops = work.segments[-1], [in_precision(t.op, precision)]
        for op in ops:
            segment.add("forward", op, priced(op))
            if recompute and segment.layer is not None:
                segment.add("recompute", op, priced(op))
            for grad in backward_ops(op):
                segment.add("backward", grad, priced(grad))
    return stages

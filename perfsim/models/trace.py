"""A scenario as a Trace: the ops one step runs, each placed on the chips that run it.

Each op is one chip's share (tensor-parallel slices, its experts, its tokens); all
chips of a pipeline stage run it together. Ops are listed in dependency order — a
chain per stage, stages one after another with a send between them. Runs of
identical layers are folded into one entry with `repeat` so a 80-layer model costs
one layer's ops to estimate.

A decoder layer runs the kernels an inference engine launches (vLLM's, docs/models.md lists them):
attn_norm, qkv, rope (rotary models), kv_append, attention, o_proj, ffn_norm, the FFN; both norms and
the final norm fuse the residual add before them (Norm.residual: pre_norm, as vLLM's fused_add_rms_norm;
an encoder's post-norm LayerNorm fuses it as post_norm). A decoder's very first attn_norm has no residual
yet (vLLM's LlamaDecoderLayer.forward: residual is None, a plain rms_norm), so layer 0 is split off its run;
a later pipeline stage receives the residual with the hidden states and fuses it from its first layer.
Every post-norm LayerNorm adds its sublayer's input, the first one too.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.models import parallel
from perfsim.models.scenario import Piece, Resolved, heads_per_rank
from perfsim.ops import (
    ACTIVATION_FLOPS,
    Attention,
    Collective,
    Elementwise,
    Gemm,
    KvAppend,
    LutGemm,
    MoE,
    Norm,
    OpBase,
    Rope,
)

HEAD_OPS = frozenset({"final_norm", "lm_head", "pooler"})  # the names of _head's ops: one row per sequence


@dataclass(frozen=True)
class TraceOp:
    """`op` run `repeat` times in a row by every chip in `chips` (pipeline `stage`); `layer`: the first layer of
    the run it belongs to (None outside the layers)."""

    op: OpBase
    stage: int
    chips: tuple[int, ...]
    repeat: int = 1
    layer: int | None = None


@dataclass(frozen=True)
class Trace:
    ops: list[TraceOp]
    resolved: Resolved


def build_trace(r: Resolved, inference: bool = True) -> Trace:
    """The ops of one prefill or decode step of `r`, placed on chips; `inference: False` (a training forward
    pass) appends nothing to a KV cache."""
    model, par = r.model, r.par
    per_stage = model.layers // par.pp
    stage_chips = par.tp * par.dp
    ops: list[TraceOp] = []
    for stage in range(par.pp):
        chips = tuple(range(stage * stage_chips, (stage + 1) * stage_chips))
        if stage == 0:
            ops += [TraceOp(op, 0, chips) for op in _embedding(r)]
        else:
            ops.append(TraceOp(_send(r, inference), stage, chips))
        for layer, count in _runs(r, stage * per_stage, (stage + 1) * per_stage):
            ops += [TraceOp(op, stage, chips, count, layer) for op in _layer(r, layer, inference)]
        if stage == par.pp - 1:
            ops += [TraceOp(op, stage, chips) for op in _head(r)]
    return Trace(ops, r)


def _runs(r: Resolved, start: int, stop: int) -> list[tuple[int, int]]:
    """Layers start..stop−1 as (first layer, count) runs, a decoder's layer 0 on its own (its attn_norm has no
    residual to add: module doc)."""
    runs = r.model.layer_runs(start, stop)
    if start == 0 and r.model.architecture == "decoder" and runs[0][1] > 1:
        runs[:1] = [(0, 1), (1, runs[0][1] - 1)]
    return runs


def _bytes(elements: float, fmt: str) -> float:
    return elements * resolve_format(fmt).bits_per_element / 8


def _embedding(r: Resolved) -> list[OpBase]:
    """Gathering each token's embedding row: reads and writes tokens × hidden."""
    return [Elementwise(name="embedding", elements=r.tokens_per_replica * r.model.hidden, flops_per_element=0,
                        dtype=r.model.embedding_dtype)]


def _send(r: Resolved, inference: bool = True) -> OpBase:
    """What one stage hands the next: tokens × hidden activations, twice for an inference decoder. vLLM's pre-norm
    decoders keep the residual stream apart from the hidden states (the fused add happens in the next norm) and send
    both: vllm-project/vllm vllm/model_executor/models/llama.py, LlamaModel.forward returns
    IntermediateTensors({"hidden_states": hidden_states, "residual": residual}) on every stage but the last. A
    post-norm encoder's layer output is its residual stream (BERT: LN(x + sublayer(x)), vLLM's bert.py BertEncoder
    passes one tensor), and training's pre-norm layers add the residual inside the layer, so Megatron-LM sends one
    (megatron/core/pipeline_parallel/schedules.py get_tensor_shapes: one (seq, micro_batch, hidden) tensor)."""
    tensors = 2 if inference and r.model.architecture == "decoder" else 1
    size = _bytes(tensors * r.tokens_per_replica * r.model.hidden, r.scenario.activation_dtype)
    return Collective(name="pp_send", kind="send", size_bytes=size, group=2, stride=r.par.tp * r.par.dp)


def _linear(r: Resolved, name: str, m: int, k: int, n: int, weight_dtype: str | None = None) -> OpBase:
    act, weights = r.scenario.activation_dtype, weight_dtype or r.weight_dtype
    if r.scenario.lut_gemm and resolve_format(weights).storage_bits <= 4:
        return LutGemm(name=name, m=m, n=n, k=k, weight_dtype=weights, dtype=act)
    return Gemm(name=name, m=m, n=n, k=k, dtype=act, weight_dtype=weights, weight_shared=True)


def _all_reduce(r: Resolved, name: str, elements: float, group: int) -> list[OpBase]:
    return parallel.collective(r, name, "all_reduce", elements, group)


def _norm(r: Resolved, name: str, rows: int, first: bool = False) -> Norm:
    """A norm with the residual add fused before it: pre-norm decoders (vLLM's fused_add_rms_norm), post-norm
    encoders (BERT's LayerNorm(x + residual)); a decoder's `first` norm has no residual yet (a plain rms_norm)."""
    decoder = r.model.architecture == "decoder"
    residual = "post_norm" if not decoder else "none" if first else "pre_norm"
    return Norm(name=name, rows=rows, cols=r.model.hidden, norm=r.model.norm, residual=residual,
                dtype=r.scenario.activation_dtype)


def _layer(r: Resolved, layer: int, inference: bool = True) -> list[OpBase]:
    model, s = r.model, r.scenario
    t, h, d, tp = r.tokens_per_replica, model.hidden, model.dim_per_head, r.par.tp
    heads_local, kv_local = heads_per_rank(model, layer, tp)
    resident = parallel.resident_tokens(r)  # the norms run on the tokens a chip holds between blocks
    act = s.activation_dtype
    ops: list[OpBase] = [
        _norm(r, "attn_norm", resident, first=layer == 0),
        *parallel.before_attention(r),
        _linear(r, "qkv", t, h, (heads_local + 2 * kv_local) * d),
        *([Rope(name="rope", tokens=t, heads=heads_local, kv_heads=kv_local, head_dim=d, dtype=act)]
          if model.rotary else []),
        *([KvAppend(name="kv_append", tokens=t, kv_heads=kv_local, head_dim=d, dtype=act, kv_dtype=r.kv_dtype)]
          if inference and model.architecture == "decoder" else []),
        *(_attention(r, piece, heads_local, kv_local) for piece in r.pieces),
        _linear(r, "o_proj", t, heads_local * d, h),
        *parallel.after_attention(r),
        _norm(r, "ffn_norm", resident),
    ]
    gather, scatter = parallel.around_ffn(r)
    if model.is_moe_layer(layer):
        return ops + gather + _moe(r) + scatter
    return ops + gather + _ffn(r, "ffn", model.layer_ffn(layer), r.par.shared_tp) + scatter


def _attention(r: Resolved, piece: Piece, heads: int, kv_heads: int) -> OpBase:
    """One piece's attention: its new tokens' queries over its cached and new keys."""
    s = r.scenario
    return Attention(name="attention", batch=piece.seqs, heads=heads, kv_heads=kv_heads, head_dim=r.model.dim_per_head,
                     q_len=piece.new, kv_len=piece.cached + piece.new, causal=r.model.architecture == "decoder",
                     fused=s.attention == "fused", dtype=s.activation_dtype, kv_dtype=r.kv_dtype)


def _ffn(r: Resolved, name: str, width: int, tp: int) -> list[OpBase]:
    """A `tp`-way slice of an FFN of `width` on the tokens it sees, all-reduced unless the exchange gathers."""
    model, t, h = r.model, parallel.ffn_tokens(r, tp), r.model.hidden
    if width % tp:
        raise PerfsimError(f"tp ({tp}) must divide the FFN width {width} of {model.name}")
    local, gated = width // tp, model.ffn_kind == "gated"
    return [
        _linear(r, f"{name}_up", t, h, (2 if gated else 1) * local),
        Elementwise(name=f"{name}_act", elements=t * local, inputs=2 if gated else 1,
                    flops_per_element=ACTIVATION_FLOPS + gated, dtype=r.scenario.activation_dtype),
        _linear(r, f"{name}_down", t, local, h),
        *([] if parallel.gathered(r) else _all_reduce(r, f"{name}_all_reduce", t * h, tp)),
    ]


def _moe(r: Resolved) -> list[OpBase]:
    model, par, s = r.model, r.par, r.scenario
    moe = model.moe
    assert moe is not None
    group_tokens = r.tokens_per_replica * par.dp
    imbalance = s.moe_imbalance
    if s.routing is not None:
        from perfsim.models.routing import step_imbalance  # numpy only where a routing distribution is given

        imbalance = step_imbalance(s.routing, s.moe_imbalance, moe.experts, moe.top_k, moe.groups, par.ep,
                                   group_tokens)
    # the all-to-all waits for the busiest rank, which sends and receives `imbalance` × the mean pairs
    per_rank = _bytes(group_tokens * moe.top_k * model.hidden / (par.ep * par.expert_tp), s.activation_dtype)
    per_rank *= imbalance
    exchanges = par.ep > 1 and not parallel.gathered(r)  # gathered, every chip already holds every token
    dispatch = [Collective(name=f"ep_{what}", kind="all_to_all", size_bytes=per_rank, group=par.ep)
                for what in ("dispatch", "combine")] if exchanges else [None, None]
    ops: list[OpBase] = [op for op in dispatch[:1] if op]
    ops.append(MoE(name="experts", tokens=group_tokens, hidden=model.hidden, expert_ffn=moe.expert_ffn,
                   experts=moe.experts, top_k=moe.top_k, groups=moe.groups, gated=model.ffn_kind == "gated",
                   imbalance=imbalance, ep=par.ep, expert_tp=par.expert_tp, dtype=s.activation_dtype,
                   weight_dtype=r.weight_dtype))
    ops += [op for op in dispatch[1:] if op]
    if not parallel.gathered(r):  # gathered, the block's reduce-scatter sums the expert-TP partials
        ops += _all_reduce(r, "expert_all_reduce", group_tokens * model.hidden / par.ep, par.expert_tp)
    if moe.shared_experts:
        ops += _ffn(r, "shared", moe.shared_experts * (moe.shared_ffn or moe.expert_ffn), par.shared_tp)
    return ops


def _head(r: Resolved) -> list[OpBase]:
    model, s = r.model, r.scenario
    seqs = r.seqs_per_replica
    if model.architecture == "encoder":
        return [_linear(r, "pooler", seqs, model.hidden, model.hidden, s.activation_dtype)] if model.pooler else []
    vocab_local = -(-model.vocab // r.par.tp)  # vocab-parallel head, the last slice padded
    return [_norm(r, "final_norm", seqs),
            _linear(r, "lm_head", seqs, model.hidden, vocab_local, model.embedding_dtype)]

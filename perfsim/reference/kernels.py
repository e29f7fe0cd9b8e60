"""Reference kernels for GEMM, softmax, attention, MoE, norm, convolution and reduction, and their checks.

Each kernel computes in float64 on small random tensors, counting FLOPs and bytes as it
goes (bytes at the storage width the op declares). Each check compares the numerics
with an independent formulation and the counts with the op's analytical counts.
"""

from __future__ import annotations

import numpy as np

from perfsim.dtypes import resolve_format
from perfsim.ops import Attention, Conv2d, Gemm, MoE, Norm, OpBase, Reduce, Softmax, routing_imbalance
from perfsim.reference.counter import Counter
from perfsim.reference.registry import Outcome, check

RNG_SEED = 20260101
LN2 = float(np.log(2.0))


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def _width(fmt: str) -> float:
    return resolve_format(fmt).bits_per_element / 8


def counts_agree(op: OpBase, counter: Counter, flops: float | None = None) -> bool:
    """The op's analytical FLOPs and bytes equal what the reference counted (relative 1e-9)."""
    expected = counter.flops if flops is None else flops
    return bool(np.isclose(op.flops, expected, rtol=1e-9) and np.isclose(op.bytes, counter.bytes, rtol=1e-9))


# --- GEMM -------------------------------------------------------------------------------------------------------


def gemm(a: np.ndarray, b: np.ndarray, op: Gemm, counter: Counter) -> np.ndarray:
    """C = A @ B with one multiply-add (2 FLOP) per (i, j, l); A and B read once, C written once."""
    counter.read(a, _width(op.dtype))
    counter.read(b, _width(op.weight_dtype or op.dtype))
    c = np.einsum("bmk,bkn->bmn", a, b)
    counter.ops(2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
    counter.write(c, _width(op.out_dtype or op.dtype))
    return c


@check("gemm-dense", op="gemm", variant="dense")
def _check_gemm() -> Outcome:
    op = Gemm(m=5, n=7, k=11, batch=3, dtype="bf16")
    a, b = _rng().normal(size=(3, 5, 11)), _rng().normal(size=(3, 11, 7))
    counter = Counter()
    c = gemm(a, b, op, counter)
    loops = np.zeros_like(c)
    for i in range(op.m):
        for j in range(op.n):
            loops[:, i, j] = sum(a[:, i, l] * b[:, l, j] for l in range(op.k))  # noqa: E741
    return Outcome(float(np.abs(c - loops).max()), 1e-12, counts_agree(op, counter), "einsum vs explicit loops")


# --- softmax ----------------------------------------------------------------------------------------------------


def softmax(x: np.ndarray, op: Softmax, counter: Counter) -> np.ndarray:
    """Row softmax by `op.variant`, counting each pass's reads, writes and FLOPs.

    A write with `write_allocate` first reads the line it writes (counted as a read of y).
    """
    width, n = _width(op.dtype), x.size
    alloc = 1 if op.write_allocate else 0

    def write_y() -> None:
        counter.write(n, width)
        counter.read(n * alloc, width)

    if op.variant == "single_pass":  # the row stays on chip: one read, all arithmetic, one write
        counter.read(n, width)
        y = np.exp(x - x.max(axis=-1, keepdims=True))
        y = y * (1.0 / y.sum(axis=-1, keepdims=True))
        counter.ops(5 * n)
        write_y()
        return y
    if op.variant == "two_pass":
        # pass 1: exp(x) = m · 2^e with m = exp(x − e·ln2), e = round(x / ln2); sum kept as (mantissa, exponent)
        counter.read(n, width)
        e = np.round(x / LN2)
        m = np.exp(x - e * LN2)
        e_max = e.max(axis=-1, keepdims=True)
        m_sum = (m * np.exp2(e - e_max)).sum(axis=-1, keepdims=True)
        counter.ops(4 * n)  # exponent, subtract, exp, scale-and-add
        # pass 2: y = exp(x − e_max·ln2) / m_sum
        counter.read(n, width)
        y = np.exp(x - e_max * LN2) * (1.0 / m_sum)
        counter.ops(3 * n)  # subtract, exp, multiply
        write_y()
        return y
    counter.read(n, width)
    mx = x.max(axis=-1, keepdims=True)
    counter.ops(n)
    counter.read(n, width)
    if op.variant == "three_pass_recompute":
        total = np.exp(x - mx).sum(axis=-1, keepdims=True)
        counter.ops(3 * n)
        counter.read(n, width)
        y = np.exp(x - mx) * (1.0 / total)
        counter.ops(3 * n)
        write_y()
        return y
    y = np.exp(x - mx)  # three_pass_reload: store exp(x − max) in y, then rescale y in place
    total = y.sum(axis=-1, keepdims=True)
    counter.ops(3 * n)
    write_y()
    counter.read(n, width)
    y = y * (1.0 / total)
    counter.ops(n)
    write_y()
    return y


def _softmax_check(variant: str) -> Outcome:
    rows, cols = 6, 257
    x = _rng().normal(scale=3.0, size=(rows, cols))
    x[0, :] = 1e4  # huge equal inputs: neither variant may overflow
    x[1, ::2], x[1, 1::2] = 1e4, -1e4
    worst = 0.0
    counts = True
    for allocate in (True, False):
        op = Softmax(rows=rows, cols=cols, dtype="fp32", variant=variant, write_allocate=allocate)
        counter = Counter()
        y = softmax(x, op, counter)
        expected = softmax(x, Softmax(rows=rows, cols=cols, variant="three_pass_recompute"), Counter())
        reference = np.exp(x[2:] - x[2:].max(axis=-1, keepdims=True))
        reference /= reference.sum(axis=-1, keepdims=True)
        if not np.isfinite(y).all():
            return Outcome(float("inf"), 1e-12, False, "overflow on ±1e4 inputs")
        worst = max(worst, float(np.abs(y - expected).max()), float(np.abs(y[2:] - reference).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "vs three-pass recompute and direct exp/sum; rows of ±1e4 stay finite")


@check("softmax-three-pass-recompute", op="softmax", variant="three_pass_recompute")
def _check_softmax_recompute() -> Outcome:
    return _softmax_check("three_pass_recompute")


@check("softmax-three-pass-reload", op="softmax", variant="three_pass_reload")
def _check_softmax_reload() -> Outcome:
    return _softmax_check("three_pass_reload")


@check("softmax-two-pass", op="softmax", variant="two_pass")
def _check_softmax_two_pass() -> Outcome:
    return _softmax_check("two_pass")


@check("softmax-single-pass", op="softmax", variant="single_pass")
def _check_softmax_single_pass() -> Outcome:
    return _softmax_check("single_pass")


# --- attention --------------------------------------------------------------------------------------------------


def _causal_mask(q_len: int, kv_len: int) -> np.ndarray:
    """Query i (of the last q_len positions) sees keys 0 .. kv_len − q_len + i."""
    return np.arange(kv_len)[None, :] <= (kv_len - q_len + np.arange(q_len))[:, None]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, op: Attention, counter: Counter) -> np.ndarray:
    """Attention with K/V heads shared by groups of query heads (GQA), unfused or fused (online softmax).

    q: [batch, heads, q_len, d]; k, v: [batch, kv_heads, kv_len, d]. Q is pre-scaled by 1/√d
    (O(q·d), counted by neither the op nor the reference). Only unmasked query-key pairs
    are counted, as a kernel skips masked tiles.
    """
    b, h, q_len, d = q.shape
    kv_len, group = k.shape[2], h // k.shape[1]
    act, kv_width = _width(op.dtype), _width(op.kv_dtype or op.dtype)
    counter.read(q, act)
    counter.read(k, kv_width)
    counter.read(v, kv_width)
    mask = _causal_mask(q_len, kv_len) if op.causal else np.ones((q_len, kv_len), bool)
    pairs = int(mask.sum()) * b * h
    kr, vr = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    qs = q / np.sqrt(d)
    if op.fused:
        out = _online_softmax_attention(qs, kr, vr, mask, tile=7)
        counter.ops(4 * pairs * d + 5 * pairs)  # same work as unfused; rescaling is O(q·d·tiles), not counted
    else:
        s = np.einsum("bhqd,bhkd->bhqk", qs, kr)
        counter.write(pairs, act)  # S written ...
        counter.read(pairs, act)  # ... and read back by the softmax
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        counter.write(pairs, act)  # P written ...
        counter.read(pairs, act)  # ... and read by the PV matmul
        out = np.einsum("bhqk,bhkd->bhqd", p, vr)
        counter.ops(4 * pairs * d + 5 * pairs)  # QK^T and PV; max, sub, exp, add, mul per score
    counter.write(out, act)
    return out


def _online_softmax_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
                              tile: int) -> np.ndarray:
    """FlashAttention's recurrence over KV tiles: running max m, running sum l, rescaled accumulator o."""
    shape = q.shape[:-1]
    m = np.full(shape, -np.inf)
    l_sum = np.zeros(shape)
    o = np.zeros(q.shape)
    for start in range(0, k.shape[2], tile):
        stop = min(start + tile, k.shape[2])
        s = np.einsum("bhqd,bhkd->bhqk", q, k[:, :, start:stop])
        s = np.where(mask[:, start:stop], s, -np.inf)
        m_new = np.maximum(m, s.max(axis=-1))
        safe = np.where(np.isfinite(m_new), m_new, 0.0)
        p = np.exp(s - safe[..., None])
        scale = np.exp(np.where(np.isfinite(m), m - safe, -np.inf))
        l_sum = l_sum * scale + p.sum(axis=-1)
        o = o * scale[..., None] + np.einsum("bhqk,bhkd->bhqd", p, v[:, :, start:stop])
        m = m_new
    return o / l_sum[..., None]


def _qkv(batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int, d: int) -> tuple[np.ndarray, ...]:
    rng = _rng()
    return (rng.normal(size=(batch, heads, q_len, d)), rng.normal(size=(batch, kv_heads, kv_len, d)),
            rng.normal(size=(batch, kv_heads, kv_len, d)))


@check("attention-gqa", op="attention", variant="gqa")
def _check_gqa() -> Outcome:
    q, k, v = _qkv(2, 8, 2, 9, 9, 16)
    op = Attention(batch=2, heads=8, kv_heads=2, head_dim=16, q_len=9, kv_len=9, fused=False)
    counter = Counter()
    gqa = attention(q, k, v, op, counter)
    mha_op = op.model_copy(update={"kv_heads": 8})
    mha = attention(q, np.repeat(k, 4, axis=1), np.repeat(v, 4, axis=1), mha_op, Counter())
    return Outcome(float(np.abs(gqa - mha).max()), 1e-12, counts_agree(op, counter),
                   "GQA (8 query heads on 2 KV heads) vs MHA with repeated KV heads; K/V read at kv_heads")


@check("attention-kv-cache", op="attention", variant="kv_cache")
def _check_kv_cache() -> Outcome:
    q, k, v = _qkv(1, 4, 4, 12, 12, 8)
    full = attention(q, k, v, Attention(heads=4, head_dim=8, q_len=12, kv_len=12, fused=False), Counter())
    worst, counts = 0.0, True
    for t in range(1, 12):  # decode token t attends over the cache of positions 0..t
        op = Attention(heads=4, head_dim=8, q_len=1, kv_len=t + 1, fused=False)
        counter = Counter()
        step = attention(q[:, :, t:t + 1], k[:, :, :t + 1], v[:, :, :t + 1], op, counter)
        worst = max(worst, float(np.abs(step[:, :, 0] - full[:, :, t]).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "decode with a KV cache vs full causal recompute, every position")


@check("attention-fused", op="attention", variant="fused")
def _check_fused() -> Outcome:
    q, k, v = _qkv(2, 4, 2, 10, 23, 8)
    worst, counts = 0.0, True
    for causal in (True, False):
        op = Attention(batch=2, heads=4, kv_heads=2, head_dim=8, q_len=10, kv_len=23, causal=causal, fused=True)
        counter = Counter()
        fused = attention(q, k, v, op, counter)
        unfused = attention(q, k, v, op.model_copy(update={"fused": False}), Counter())
        worst = max(worst, float(np.abs(fused - unfused).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "online softmax over KV tiles of 7 vs unfused; scores never stored")


# --- mixture of experts -----------------------------------------------------------------------------------------


def route(logits: np.ndarray, top_k: int, groups: int) -> np.ndarray:
    """Chosen experts per token [tokens, top_k]: top_k overall, or top_k / groups inside each group (MoGE)."""
    tokens, experts = logits.shape
    per_group, k_group = experts // groups, top_k // groups
    grouped = logits.reshape(tokens, groups, per_group)
    local = np.argsort(-grouped, axis=-1, kind="stable")[..., :k_group]
    return (local + per_group * np.arange(groups)[None, :, None]).reshape(tokens, top_k)


def moe(x: np.ndarray, weights: dict[str, np.ndarray], op: MoE, counter: Counter) -> tuple[np.ndarray, np.ndarray]:
    """Sparse MoE: router, then each token through its chosen experts only (SwiGLU), softmax-weighted.

    Counts matmul FLOPs (router and expert matrices, as the op does; the SiLU and gate
    multiply are not counted by either) and reads each touched expert's weights once.
    """
    tokens, hidden = x.shape
    width, w_width = _width(op.dtype), _width(op.weight_dtype or op.dtype)
    counter.read(x, width)
    counter.read(weights["router"], width)
    logits = x @ weights["router"]
    counter.ops(2 * tokens * hidden * op.experts)
    chosen = route(logits, op.top_k, op.groups)
    gate = np.take_along_axis(logits, chosen, axis=1)
    gate = np.exp(gate - gate.max(axis=1, keepdims=True))
    gate /= gate.sum(axis=1, keepdims=True)
    y = np.zeros_like(x)
    for e in np.unique(chosen):
        rows, slot = np.nonzero(chosen == e)
        up, gt, down = weights["up"][e], weights["gate"][e], weights["down"][e]
        for w in (up, gt, down):
            counter.read(w, w_width)
        hidden_act = (x[rows] @ gt) / (1 + np.exp(-(x[rows] @ gt))) * (x[rows] @ up)
        y[rows] += gate[rows, slot][:, None] * (hidden_act @ down)
        counter.ops(2 * len(rows) * 3 * hidden * op.expert_ffn)
    counter.write(y, width)
    return y, chosen


def dense_moe(x: np.ndarray, weights: dict[str, np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """Every expert on every token, masked to the chosen ones: the dense reference."""
    logits = x @ weights["router"]
    mask = np.zeros_like(logits, bool)
    np.put_along_axis(mask, chosen, True, axis=1)
    masked = np.where(mask, logits, -np.inf)
    gate = np.exp(masked - masked.max(axis=1, keepdims=True))
    gate /= gate.sum(axis=1, keepdims=True)
    outs = np.stack([((x @ g) / (1 + np.exp(-(x @ g))) * (x @ u)) @ d
                     for u, g, d in zip(weights["up"], weights["gate"], weights["down"], strict=True)], axis=1)
    return (gate[..., None] * outs).sum(axis=1)


def _moe_weights(hidden: int, ffn: int, experts: int) -> dict[str, np.ndarray]:
    rng = _rng()
    return {"router": rng.normal(size=(hidden, experts)), "up": rng.normal(size=(experts, hidden, ffn)) / hidden,
            "gate": rng.normal(size=(experts, hidden, ffn)) / hidden,
            "down": rng.normal(size=(experts, ffn, hidden)) / ffn}


def _moe_check(groups: int) -> Outcome:
    tokens, hidden, ffn, experts, top_k = 64, 12, 8, 16, 4
    op = MoE(tokens=tokens, hidden=hidden, expert_ffn=ffn, experts=experts, top_k=top_k, groups=groups, dtype="fp16")
    x = _rng().normal(size=(tokens, hidden))
    weights = _moe_weights(hidden, ffn, experts)
    counter = Counter()
    y, chosen = moe(x, weights, op, counter)
    error = float(np.abs(y - dense_moe(x, weights, chosen)).max())
    # 64 tokens × 4 choices touch every one of the 16 experts here; the op's expectation agrees to 1e-6
    touched_all = len(np.unique(chosen)) == experts and np.isclose(op.experts_touched, experts, rtol=1e-6)
    counts = touched_all and bool(np.isclose(op.flops, counter.flops)
                                  and np.isclose(op.bytes, counter.bytes, rtol=1e-6))
    load = np.bincount(chosen.ravel(), minlength=experts)
    detail = f"sparse vs dense masked; imbalance over 4 ranks {routing_imbalance(tuple(load), 4):.3f}"
    if groups > 1:
        per_group = (chosen // (experts // groups))
        exact = all((np.sort(row) == np.repeat(np.arange(groups), top_k // groups)).all() for row in per_group)
        balanced = routing_imbalance(tuple(load), groups) == 1.0
        if not (exact and balanced):
            return Outcome(error, 1e-12, False, "MoGE must pick exactly top_k / groups experts in every group")
        detail = "grouped routing: exactly k/groups per group, so groups on devices give imbalance 1.0"
    return Outcome(error, 1e-12, counts, detail)


@check("moe-topk", op="moe", variant="topk")
def _check_moe_topk() -> Outcome:
    return _moe_check(groups=1)


@check("moe-grouped", op="moe", variant="grouped")
def _check_moe_grouped() -> Outcome:
    return _moe_check(groups=4)


# --- norm and convolution ---------------------------------------------------------------------------------------


def normalised(x: np.ndarray, kind: str, gain: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`x` normalised over its last axis as the kernel computes it, the same by numpy's own mean and variance)."""
    if kind == "rmsnorm":
        y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6) * gain
        return y, x * (1 / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-6)) * gain
    mu = x.mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-6) * gain + bias
    return y, (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-6) * gain + bias


@check("norm-rmsnorm-layernorm", op="norm", variant="rmsnorm_layernorm")
def _check_norm() -> Outcome:
    x = _rng().normal(size=(5, 64))
    gain, bias = _rng().normal(size=64), _rng().normal(size=64)
    worst, counts = 0.0, True
    for kind, flops_per in (("rmsnorm", 4), ("layernorm", 7)):
        op = Norm(rows=5, cols=64, norm=kind, dtype="bf16")
        counter = Counter()
        counter.read(x, 2)
        counter.read(64 * (1 if kind == "rmsnorm" else 2), 2)
        y, expected = normalised(x, kind, gain, bias)
        counter.ops(flops_per * x.size)
        counter.write(y, 2)
        worst = max(worst, float(np.abs(y - expected).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "rmsnorm 4 FLOP/element, layernorm 7; x, gain (and bias), y once")


def conv2d(x: np.ndarray, w: np.ndarray, op: Conv2d, counter: Counter) -> np.ndarray:
    """Direct convolution (NCHW, grouped), one multiply-add per (output, input channel in group, kh, kw)."""
    b = x.shape[0]
    pad = np.pad(x, ((0, 0), (0, 0), (op.padding,) * 2, (op.padding,) * 2))
    out = np.zeros((b, op.out_channels, op.out_height, op.out_width))
    per_group_in, per_group_out = op.in_channels // op.groups, op.out_channels // op.groups
    for oc in range(op.out_channels):
        g = oc // per_group_out
        for kh in range(op.kernel):
            for kw in range(op.kernel):
                window = pad[:, g * per_group_in:(g + 1) * per_group_in,
                             kh:kh + op.stride * op.out_height:op.stride, kw:kw + op.stride * op.out_width:op.stride]
                out[:, oc] += np.einsum("bchw,c->bhw", window, w[oc, :, kh, kw])
    width = _width(op.dtype)
    counter.read(x, width)
    counter.read(w, width)
    counter.ops(2 * out.size * per_group_in * op.kernel**2)
    counter.write(out, width)
    return out


def _im2col_conv(x: np.ndarray, w: np.ndarray, op: Conv2d) -> np.ndarray:
    pad = np.pad(x, ((0, 0), (0, 0), (op.padding,) * 2, (op.padding,) * 2))
    cols = np.lib.stride_tricks.sliding_window_view(pad, (op.kernel, op.kernel), axis=(2, 3))
    cols = cols[:, :, ::op.stride, ::op.stride][:, :, :op.out_height, :op.out_width]
    per_in, per_out = op.in_channels // op.groups, op.out_channels // op.groups
    outs = [np.einsum("bchwij,ocij->bohw", cols[:, g * per_in:(g + 1) * per_in], w[g * per_out:(g + 1) * per_out])
            for g in range(op.groups)]
    return np.concatenate(outs, axis=1)


@check("conv2d-direct-depthwise", op="conv2d", variant="direct_depthwise")
def _check_conv() -> Outcome:
    worst, counts = 0.0, True
    for groups, out_ch in ((1, 6), (4, 4)):  # a dense and a depthwise convolution
        op = Conv2d(batch=2, in_channels=4, out_channels=out_ch, height=9, width=8, kernel=3, stride=2, padding=1,
                    groups=groups)
        x = _rng().normal(size=(2, 4, 9, 8))
        w = _rng().normal(size=(out_ch, 4 // groups, 3, 3))
        counter = Counter()
        y = conv2d(x, w, op, counter)
        worst = max(worst, float(np.abs(y - _im2col_conv(x, w, op)).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "direct loops vs im2col, dense and depthwise, stride 2, padding 1")


# --- reduction --------------------------------------------------------------------------------------------------


def reduce(x: np.ndarray, op: Reduce, counter: Counter) -> np.ndarray:
    """Sum or max of each row of x: cols − 1 adds or compares per row; x read once, one output per row written."""
    counter.read(x, _width(op.dtype))
    y = x.sum(axis=-1) if op.op == "sum" else x.max(axis=-1)
    counter.ops(x.shape[0] * (x.shape[1] - 1))
    counter.write(y, _width(op.dtype))
    return y


@check("reduce-sum-max", op="reduce", variant="sum_max")
def _check_reduce() -> Outcome:
    x = _rng().normal(size=(6, 37))
    worst, counts = 0.0, True
    for kind, fold in (("sum", lambda a, b: a + b), ("max", max)):
        op = Reduce(rows=6, cols=37, op=kind, dtype="fp16")
        counter = Counter()
        y = reduce(x, op, counter)
        loops = np.empty(6)
        for i in range(6):  # an explicit left fold: the cols − 1 operations the count assumes
            acc = x[i, 0]
            for j in range(1, 37):
                acc = fold(acc, x[i, j])
            loops[i] = acc
        worst = max(worst, float(np.abs(y - loops).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "numpy sum/max vs an explicit left fold; x once, one output per row")

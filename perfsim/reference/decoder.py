"""Reference kernels for a decoder layer's small kernels: RoPE, the KV-cache append and the fused residual norm.

Each runs on small real tensors in float64 as the vLLM kernel it models does (csrc/pos_encoding_kernels.cu,
csrc/cache_kernels.cu, csrc/layernorm_kernels.cu), counting FLOPs and bytes at the op's storage widths, and
compares the numerics with an independent formulation and the counts with the op's.
"""

from __future__ import annotations

import numpy as np

from perfsim.ops import KvAppend, Norm, Rope
from perfsim.reference.counter import Counter
from perfsim.reference.kernels import _rng, _width, counts_agree, normalised
from perfsim.reference.registry import Outcome, check

ROPE_BASE = 10_000.0


def cos_sin_cache(positions: int, rotary_dim: int) -> np.ndarray:
    """vLLM's cos_sin_cache [positions, rotary_dim]: cos(p·θ_i) then sin(p·θ_i), θ_i = base^(−2i / rotary_dim)."""
    inv_freq = ROPE_BASE ** (-np.arange(0, rotary_dim, 2) / rotary_dim)
    angles = np.outer(np.arange(positions), inv_freq)
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)


def rope(q: np.ndarray, k: np.ndarray, positions: np.ndarray, cache: np.ndarray, op: Rope,
         counter: Counter) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the first rotary_dim dims of every head of q [t, heads, d] and k [t, kv_heads, d] (NeoX halves):
    per token one cache row read; per pair (x, y) x·cos − y·sin and y·cos + x·sin (6 FLOP); q, k read and
    written once."""
    width, half = _width(op.dtype), op.rotated // 2
    rows = cache[positions]
    counter.read(rows, width)
    cos, sin = rows[:, None, :half], rows[:, None, half:]
    out = []
    for x in (q, k):
        counter.read(x[..., :op.rotated], width)
        a, b = x[..., :half], x[..., half:op.rotated]
        y = x.copy()
        y[..., :half], y[..., half:op.rotated] = a * cos - b * sin, b * cos + a * sin
        counter.ops(6 * a.size)
        counter.write(y[..., :op.rotated], width)
        out.append(y)
    return out[0], out[1]


@check("rope-neox", op="rope", variant="neox")
def _check_rope() -> Outcome:
    t, heads, kv_heads, d, rot = 3, 4, 2, 16, 8
    op = Rope(tokens=t, heads=heads, kv_heads=kv_heads, head_dim=d, rotary_dim=rot, dtype="bf16")
    rng = _rng()
    q, k = rng.normal(size=(t, heads, d)), rng.normal(size=(t, kv_heads, d))
    positions = np.array([0, 5, 11])
    counter = Counter()
    q_rot, k_rot = rope(q, k, positions, cos_sin_cache(16, rot), op, counter)
    worst = 0.0
    for x, y in ((q, q_rot), (k, k_rot)):  # the rotation as a complex product (a + ib)·e^{ipθ}
        half = rot // 2
        theta = positions[:, None, None] * ROPE_BASE ** (-np.arange(0, rot, 2) / rot)
        z = (x[..., :half] + 1j * x[..., half:rot]) * np.exp(1j * theta)
        expected = np.concatenate([z.real, z.imag, x[..., rot:]], axis=-1)
        worst = max(worst, float(np.abs(y - expected).max()))
    return Outcome(worst, 1e-12, counts_agree(op, counter),
                   "vs a complex product; q, k rotated dims read and written once, a cos/sin row per token, 3 FLOP")


def kv_append(k: np.ndarray, v: np.ndarray, slots: np.ndarray, key_cache: np.ndarray, value_cache: np.ndarray,
              scale: float, op: KvAppend, counter: Counter) -> None:
    """Store each token's k, v [t, kv_heads, d] at its cache slot (caches [slots, kv_heads, d]), divided by
    `scale` (1 FLOP per element) where the cache's format differs from the input's, as reshape_and_cache_flash."""
    converts = (op.kv_dtype or op.dtype) != op.dtype
    for x, cache in ((k, key_cache), (v, value_cache)):
        counter.read(x, _width(op.dtype))
        cache[slots] = x / scale if converts else x
        counter.ops(x.size if converts else 0)
        counter.write(x, _width(op.kv_dtype or op.dtype))


@check("kv-append-fp8", op="kv_append", variant="bf16_fp8")
def _check_kv_append() -> Outcome:
    t, kv_heads, d = 3, 2, 8
    rng = _rng()
    k, v = rng.normal(size=(t, kv_heads, d)), rng.normal(size=(t, kv_heads, d))
    slots = np.array([7, 2, 12])
    worst, counts = 0.0, True
    for kv_dtype, scale in (("bf16", 1.0), ("fp8_e4m3", 0.5)):
        op = KvAppend(tokens=t, kv_heads=kv_heads, head_dim=d, dtype="bf16", kv_dtype=kv_dtype)
        key_cache, value_cache = np.zeros((16, kv_heads, d)), np.zeros((16, kv_heads, d))
        counter = Counter()
        kv_append(k, v, slots, key_cache, value_cache, scale, op, counter)
        for x, cache in ((k, key_cache), (v, value_cache)):
            worst = max(worst, float(np.abs(cache[slots] * scale - x).max()))
            untouched = np.setdiff1d(np.arange(16), slots)
            worst = max(worst, float(np.abs(cache[untouched]).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "slots hold k, v (times the scale), others untouched; read in dtype, "
                   "written in kv_dtype, 1 FLOP per element converted")


@check("norm-fused-residual", op="norm", variant="residual")
def _check_norm_residual() -> Outcome:
    rows, cols = 5, 64
    rng = _rng()
    x, residual, gain, bias = (rng.normal(size=(rows, cols)), rng.normal(size=(rows, cols)), rng.normal(size=cols),
                               rng.normal(size=cols))
    worst, counts = 0.0, True
    for norm, residual_kind, flops_per in (("rmsnorm", "pre_norm", 5), ("layernorm", "post_norm", 8)):
        op = Norm(rows=rows, cols=cols, norm=norm, residual=residual_kind, dtype="bf16")
        counter = Counter()
        counter.read(x, 2)
        counter.read(residual, 2)
        counter.read(cols * (1 if norm == "rmsnorm" else 2), 2)
        z = x + residual  # the fused add: 1 FLOP per element
        if residual_kind == "pre_norm":
            counter.write(z, 2)  # fused_add_rms_norm writes the sum back as the new residual
        y, expected = normalised(z, norm, gain, bias)
        counter.ops(flops_per * x.size)
        counter.write(y, 2)
        worst = max(worst, float(np.abs(y - expected).max()))
        counts &= counts_agree(op, counter)
    return Outcome(worst, 1e-12, counts, "pre_norm: x, residual read, residual and y written, 5 FLOP/element; "
                   "post_norm: x, residual read, y written, layernorm's 7 + 1")

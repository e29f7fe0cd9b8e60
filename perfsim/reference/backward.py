"""Reference backward passes: gradients of GEMM, FlashAttention-style attention, RMSNorm, softmax and conv2d (im2col)
in float64.

Each kernel counts the FLOPs and bytes it performs (bytes at the op's storage widths); each check compares its
gradients with central finite differences of the loss L = Σ output ⊙ dy, and its counts with the backward ops of
perfsim.training.backward.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from perfsim.dtypes import resolve_format
from perfsim.ops import Attention, Conv2d, Gemm, Norm, OpBase, Softmax
from perfsim.reference.counter import Counter
from perfsim.reference.registry import Outcome, check
from perfsim.training.backward import LSE_BYTES, AttentionGrad, backward_ops

RNG_SEED = 20260102
STEP = 1e-6  # finite-difference step (float64)


def _width(fmt: str) -> float:
    return resolve_format(fmt).bits_per_element / 8


def finite_difference(loss: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """∂loss/∂x by central differences, element by element."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + STEP
        up = loss(x)
        x[index] = saved - STEP
        down = loss(x)
        x[index] = saved
        grad[index] = (up - down) / (2 * STEP)
    return grad


def counts_of(ops: list[OpBase]) -> tuple[float, float]:
    return sum(op.flops for op in ops), sum(op.bytes for op in ops)


def gemm_backward(a: np.ndarray, b: np.ndarray, dc: np.ndarray, op: Gemm, counter: Counter) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """dA = dC·Bᵀ (reads dC and B, writes dA) and dB = Aᵀ·dC (reads A and dC, writes dB): 2·m·n·k FLOP each."""
    act, weight = _width(op.dtype), _width(op.weight_dtype or op.dtype)
    m, k = a.shape
    n = b.shape[1]
    counter.read(dc, act)
    counter.read(b, weight)
    da = dc @ b.T
    counter.write(da, act)
    counter.read(a, act)
    counter.read(dc, act)
    db = a.T @ dc
    counter.write(db, act)
    counter.ops(2 * 2 * m * n * k)
    return da, db


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """(O, row log-sum-exp L) of one sequence; q [heads, q_len, d], k and v [kv_heads, kv_len, d] (GQA)."""
    group = q.shape[0] // k.shape[0]
    kr, vr = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    s = np.einsum("hqd,hkd->hqk", q, kr) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(_mask(q.shape[1], k.shape[1]), s, -np.inf)
    lse = np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1)) + s.max(-1)
    return np.einsum("hqk,hkd->hqd", np.exp(s - lse[..., None]), vr), lse


def _mask(q_len: int, kv_len: int) -> np.ndarray:
    return np.arange(kv_len)[None, :] <= np.arange(q_len)[:, None] + (kv_len - q_len)


def attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray, op: Attention,
                       counter: Counter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FlashAttention-2's backward: recompute P from Q, K and L; dV = Pᵀ·dO, dP = dO·Vᵀ, D = rowsum(dO ⊙ O),
    dS = P ⊙ (dP − D), dQ = dS·K, dK = dSᵀ·Q (the 1/√d scale folded into Q, uncounted as in the forward)."""
    heads, q_len, d = q.shape
    group = heads // k.shape[0]
    o, lse = attention_forward(q, k, v, op.causal)
    act, kv_width = _width(op.dtype), _width(op.kv_dtype or op.dtype)
    for x, width in ((q, act), (k, kv_width), (v, kv_width), (o, act), (do, act)):
        counter.read(x, width)
    counter.read(lse, LSE_BYTES)
    mask = _mask(q_len, k.shape[1]) if op.causal else np.ones((q_len, k.shape[1]), bool)
    pairs = int(mask.sum()) * heads
    kr, vr = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    scale = 1 / np.sqrt(d)
    p = np.where(mask, np.exp(np.einsum("hqd,hkd->hqk", q, kr) * scale - lse[..., None]), 0.0)
    dv = np.einsum("hqk,hqd->hkd", p, do)
    dp = np.einsum("hqd,hkd->hqk", do, vr)
    delta = (do * o).sum(-1)
    ds = p * (dp - delta[..., None])
    dq = np.einsum("hqk,hkd->hqd", ds, kr) * scale
    dk = np.einsum("hqk,hqd->hkd", ds, q) * scale
    counter.ops(5 * 2 * pairs * d + 5 * pairs + 2 * heads * q_len * d)
    dk = dk.reshape(k.shape[0], group, *dk.shape[1:]).sum(1)  # GQA: a shared K/V head sums its group's gradients
    dv = dv.reshape(k.shape[0], group, *dv.shape[1:]).sum(1)
    for x, width in ((dq, act), (dk, kv_width), (dv, kv_width)):
        counter.write(x, width)
    return dq, dk, dv


def rmsnorm_backward(x: np.ndarray, gain: np.ndarray, dy: np.ndarray, op: Norm, counter: Counter) -> np.ndarray:
    """dx of y = x · r · g, r = 1/√(mean(x²) + ε): dx = r·(g·dy − x̂·c/n), c = Σ g·dy·x̂; reads x and dy, writes dx."""
    width = _width(op.dtype)
    counter.read(x, width)
    counter.read(dy, width)
    n = x.shape[-1]
    r = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    xhat = x * r
    gdy = gain * dy
    c = (gdy * xhat).sum(-1, keepdims=True)
    dx = r * (gdy - xhat * c / n)
    counter.ops(9 * x.size)  # g·dy, x̂, dgain (2), the row dot (2), r·(… − x̂·c/n) (3)
    counter.write(dx, width)
    return dx


def softmax_backward(y: np.ndarray, dy: np.ndarray, op: Softmax, counter: Counter) -> np.ndarray:
    """dx = y ⊙ (dy − Σ y·dy) over the last axis: reads y and dy, writes dx; 4 FLOP per element."""
    width = _width(op.dtype)
    counter.read(y, width)
    counter.read(dy, width)
    dx = y * (dy - (y * dy).sum(-1, keepdims=True))
    counter.ops(4 * y.size)
    counter.write(dx, width)
    return dx


def _agree(ops: list[OpBase], counter: Counter) -> bool:
    flops, moved = counts_of(ops)
    return bool(np.isclose(flops, counter.flops, rtol=1e-9) and np.isclose(moved, counter.bytes, rtol=1e-9))


@check("gemm-backward", op="gemm_grad", variant="dgrad+wgrad")
def _check_gemm_backward() -> Outcome:
    rng = np.random.default_rng(RNG_SEED)
    op = Gemm(m=4, n=3, k=5, dtype="bf16")
    a, b, dc = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    counter = Counter()
    da, db = gemm_backward(a, b, dc, op, counter)
    fd_a = finite_difference(lambda x: float(((x @ b) * dc).sum()), a.copy())
    fd_b = finite_difference(lambda x: float(((a @ x) * dc).sum()), b.copy())
    error = max(float(np.abs(da - fd_a).max()), float(np.abs(db - fd_b).max()))
    return Outcome(error, 1e-6, _agree(backward_ops(op), counter), "analytic vs finite differences")


@check("attention-backward", op="attention_grad", variant="flash-gqa-causal")
def _check_attention_backward() -> Outcome:
    rng = np.random.default_rng(RNG_SEED)
    op = Attention(heads=4, kv_heads=2, head_dim=3, q_len=5, kv_len=5, causal=True)
    q, k, v = rng.normal(size=(4, 5, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    do = rng.normal(size=(4, 5, 3))
    counter = Counter()
    dq, dk, dv = attention_backward(q, k, v, do, op, counter)

    def loss(qq: np.ndarray, kk: np.ndarray, vv: np.ndarray) -> float:
        return float((attention_forward(qq, kk, vv, True)[0] * do).sum())

    fd = [finite_difference(lambda x: loss(x, k, v), q.copy()), finite_difference(lambda x: loss(q, x, v), k.copy()),
          finite_difference(lambda x: loss(q, k, x), v.copy())]
    error = max(float(np.abs(g - f).max()) for g, f in zip((dq, dk, dv), fd, strict=True))
    return Outcome(error, 1e-6, _agree([AttentionGrad(forward=op)], counter), "recomputed P vs finite differences")


@check("rmsnorm-backward", op="norm_grad", variant="rmsnorm")
def _check_rmsnorm_backward() -> Outcome:
    rng = np.random.default_rng(RNG_SEED)
    op = Norm(rows=3, cols=6, norm="rmsnorm")
    x, gain, dy = rng.normal(size=(3, 6)), rng.normal(size=6), rng.normal(size=(3, 6))
    counter = Counter()
    dx = rmsnorm_backward(x, gain, dy, op, counter)

    def loss(xx: np.ndarray) -> float:
        return float((xx / np.sqrt((xx * xx).mean(-1, keepdims=True) + 1e-6) * gain * dy).sum())

    grad = backward_ops(op)
    return Outcome(float(np.abs(dx - finite_difference(loss, x.copy())).max()), 1e-6, _agree(grad, counter),
                   "closed form vs finite differences")


@check("softmax-backward", op="softmax_grad", variant="rows")
def _check_softmax_backward() -> Outcome:
    rng = np.random.default_rng(RNG_SEED)
    op = Softmax(rows=3, cols=7, dtype="fp32")
    x, dy = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))

    def softmax(xx: np.ndarray) -> np.ndarray:
        e = np.exp(xx - xx.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    counter = Counter()
    dx = softmax_backward(softmax(x), dy, op, counter)
    fd = finite_difference(lambda xx: float((softmax(xx) * dy).sum()), x.copy())
    grad = backward_ops(op)
    return Outcome(float(np.abs(dx - fd).max()), 1e-6, _agree(grad, counter), "closed form vs finite differences")


def _im2col(x: np.ndarray, op: Conv2d) -> np.ndarray:
    """[C·k·k, batch·OH·OW] patches of x [batch, C, H, W] (zero padding)."""
    k, s, p = op.kernel, op.stride, op.padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = [padded[:, :, i:i + s * op.out_height:s, j:j + s * op.out_width:s] for i in range(k) for j in range(k)]
    stacked = np.stack(cols, axis=2)  # batch, C, k·k, OH, OW
    return stacked.transpose(1, 2, 0, 3, 4).reshape(op.in_channels * k * k, -1)


def conv2d_forward(x: np.ndarray, w: np.ndarray, op: Conv2d) -> np.ndarray:
    y = w.reshape(op.out_channels, -1) @ _im2col(x, op)
    return y.reshape(op.out_channels, op.batch, op.out_height, op.out_width).transpose(1, 0, 2, 3)


def conv2d_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, op: Conv2d, counter: Counter) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """Weight gradient dW = dY·colsᵀ (reads x and dy, writes dw) and input gradient dX = col2im(Wᵀ·dY) (reads dy
    and w, writes dx): each the forward's MACs (im2col and its transpose are layout, not FLOPs)."""
    width = _width(op.dtype)
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(op.out_channels, -1)
    counter.read(x, width)
    counter.read(dy, width)
    dw = (dy_mat @ _im2col(x, op).T).reshape(w.shape)
    counter.write(dw, width)
    counter.read(dy, width)
    counter.read(w, width)
    dcols = w.reshape(op.out_channels, -1).T @ dy_mat  # C·k·k × batch·OH·OW
    dx = np.zeros((op.batch, op.in_channels, op.height + 2 * op.padding, op.width + 2 * op.padding))
    k, s = op.kernel, op.stride
    patches = dcols.reshape(op.in_channels, k, k, op.batch, op.out_height, op.out_width)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + s * op.out_height:s, j:j + s * op.out_width:s] += patches[:, i, j].transpose(1, 0, 2, 3)
    dx = dx[:, :, op.padding:op.padding + op.height, op.padding:op.padding + op.width]
    counter.write(dx, width)
    counter.ops(2 * 2 * op.macs)
    return dx, dw


@check("conv2d-backward", op="conv2d_grad", variant="im2col")
def _check_conv2d_backward() -> Outcome:
    rng = np.random.default_rng(RNG_SEED)
    op = Conv2d(batch=2, in_channels=3, out_channels=4, height=5, width=5, kernel=3, stride=2, padding=1)
    x, w = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3))
    dy = rng.normal(size=(2, 4, op.out_height, op.out_width))
    counter = Counter()
    dx, dw = conv2d_backward(x, w, dy, op, counter)
    fd_x = finite_difference(lambda xx: float((conv2d_forward(xx, w, op) * dy).sum()), x.copy())
    fd_w = finite_difference(lambda ww: float((conv2d_forward(x, ww, op) * dy).sum()), w.copy())
    error = max(float(np.abs(dx - fd_x).max()), float(np.abs(dw - fd_w).max()))
    return Outcome(error, 1e-6, _agree(backward_ops(op), counter), "im2col gradients vs finite differences")

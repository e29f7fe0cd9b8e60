"""Unfused attention as its three kernels, and fused fp32 attention's vector-unit tiles, against arithmetic by hand.

H100 (h100-sxm): compute calibrated at 0.7009 of every peak (CAL-GEMM-H100), HBM at 0.8866 of 3.35 TB/s, L2 at the
default 0.8 of 12 TB/s, one SM draws at most 231 GB/s from either (calibration.core_bandwidth), a launch costs
2.43 µs (CAL-LAUNCH-H100), bf16 GEMM tile 128 × 256 × 64, 16 exp per clock per SM at 1.83 GHz.
RTX A6000: 84 SMs, no fp32 matrix unit, CUDA cores 38.7 TFLOP/s × 0.6178 (CAL-GEMM-A6000), launch 2.05 µs.
"""

import pytest

from perfsim.cost.accelerator import accelerator_cost
from perfsim.cost.attention_kernels import DEFAULT_TILES, attention_tiles, unfused_cost
from perfsim.hardware import load_hardware
from perfsim.ops import Attention

H100 = load_hardware("h100-sxm")
A6000 = load_hardware("rtx-a6000")
HBM = 3.35e12 * 0.8866
L2 = 12e12 * 0.8
SM_DRAW = 231e9
SM_BF16 = 989.4e12 * 0.7009 / 132  # one SM's sustained tensor rate
ELEMENT_OPS = 66.9e12 * 0.7009 / 2  # fp32 element operations per second (an FMA lane-op counts 2 FLOP)
EXPS = 16 * 132 * 1.83e9 * 0.7009  # special-function units, derated like the vector units
LAUNCH = 2.43e-6


def test_unfused_attention_is_three_kernels_with_s_and_p_in_l2():
    # batch 1, 4 heads (MHA), head_dim 64, 256 queries over 256 keys, no mask, bf16.
    op = Attention(heads=4, head_dim=64, q_len=256, kv_len=256, causal=False, fused=False, dtype="bf16")
    tensor = 4 * 256 * 64 * 2  # one of Q, K, V, O: 131,072 B
    s = 4 * 256 * 256 * 2  # S (and P): 524,288 B, within the 50 MiB L2, so written and read back there
    # QKᵀ: batch 4 of 256 × 256 × 64: 4 × 2 × 1 = 8 tiles of 128 × 256, one K step (no split): 8 SMs, one wave.
    # Q and K from HBM, S written to L2, both at 8 × 231 GB/s = 1.85 TB/s (below HBM and L2): 0.28 µs < compute.
    qk = 2 * 128 * 256 * 64 / SM_BF16
    assert 2 * tensor / (8 * SM_DRAW) < qk and s / (8 * SM_DRAW) < qk
    # softmax: 4 · 256 rows ≥ 132 SMs; per score 4 element operations and one exp; S read and P written in L2
    # (2 × 524,288 B / 9.6 TB/s = 0.109 µs) under the 0.141 µs of compute
    scores = 4 * 256 * 256
    softmax = scores * (4 / ELEMENT_OPS + 1 / EXPS)
    assert 2 * s / L2 < softmax
    # PV: batch 4 of 256 × 64 × 256: 8 tiles of 128 × 256, 4 K steps. Splits 1, 2, 4 (capped at the K steps) are
    # tried; 4 gives 32 units of one K step in one wave (0.80 µs), its fp32 partials 4 · 4 · 256 · 64 · 4 B written
    # and read in L2 at 32 × 231 GB/s = 7.39 TB/s (0.28 µs); P (L2), V and O (HBM at 2.97 TB/s, 0.09 µs) stream
    # under it too
    partials = 4 * 4 * 256 * 64 * 4
    pv = 2 * 128 * 256 * 64 / SM_BF16
    assert (2 * partials + s) / (32 * SM_DRAW) < pv
    c = accelerator_cost(op, H100)
    assert c.bytes_per_level["hbm"] == 4 * tensor  # Q, K, V read, O written, once each
    assert c.bytes_per_level["l2"] == 4 * s + 2 * partials  # S written, read; P written, read; partials
    assert c.overhead_s == pytest.approx(3 * LAUNCH)
    assert c.time_s == pytest.approx(qk + softmax + pv + 3 * LAUNCH)
    assert c.flops == op.flops  # the algorithmic count
    assert c.detail["kernels"] == "qk, softmax, pv"


def test_unfused_scores_beyond_l2_go_to_main_memory_and_gqa_reads_kv_once():
    # 32 query heads over 8 KV heads, head_dim 128, 2048 causal queries over 2048 keys, bf16. The kernels compute the
    # whole S (the mask is applied to it): 32 · 2048 · 2048 · 2 B = 256 MiB, beyond the 50 MiB L2.
    op = Attention(heads=32, kv_heads=8, head_dim=128, q_len=2048, kv_len=2048, fused=False, dtype="bf16")
    s = 32 * 2048 * 2048 * 2
    c = unfused_cost(op, H100)
    q = 32 * 2048 * 128 * 2
    kv = 8 * 2048 * 128 * 2  # K and V read at the 8 KV heads: each GEMM stacks a group's 4 query heads' rows
    # S written, read; P written, read, all in HBM, plus Q, K, V, O once. P is not re-read: PV's N (head_dim 128)
    # is one 256-wide tile column, so each row panel of P is read by one tile; re-reads of Q, K and V (each within
    # the L2) hit the L2
    assert c.bytes_per_level["hbm"] == 4 * s + 2 * q + 2 * kv
    assert c.flops == op.flops < 4 * 32 * 2048 * 2048 * 128  # causal: about half the pairs the kernels compute


def test_fp32_fused_attention_on_a6000_uses_the_vector_unit_kernel_tiles():
    # 12 heads, head_dim 64, 129 tokens, no mask, fp32: no fp32 matrix unit on the A6000, so PyTorch's
    # memory-efficient kernel's 64 × 64 tiles (kMaxK 64), not FlashAttention's 128 × 128 tensor-core tiles.
    op = Attention(heads=12, head_dim=64, q_len=129, kv_len=129, causal=False, dtype="fp32")
    assert attention_tiles(A6000, op) == (64, 64)
    assert attention_tiles(A6000, op.model_copy(update={"head_dim": 128})) == (64, 128)
    assert attention_tiles(A6000, op.model_copy(update={"head_dim": 256})) == (32, 128)
    assert attention_tiles(A6000, op.model_copy(update={"dtype": "fp16"})) == DEFAULT_TILES  # tensor cores
    # ⌈129/64⌉ = 3 query tiles × 12 heads = 36 units: one wave on 84 SMs, each visiting 3 KV tiles of 64 keys.
    # Per tile: QKᵀ and PV, 4 · 64 · 64 · 64 FLOP on one SM's CUDA cores (38.7 TFLOP/s × 0.6178 / 84), then
    # 64 · 64 scores × (4 element operations + 1 exp) at one SM's share of 38.7 × 0.6178 / 2 per s (no SFU in spec)
    sm = 38.7e12 * 0.6178 / 84
    tile = 4 * 64**3 / sm + 64 * 64 * 5 / (sm / 2)
    c = accelerator_cost(op, A6000)
    assert c.resource_s["compute:fp32"] == pytest.approx(3 * tile)  # 11.5 µs (the 128 × 128 tiles: 30.6 µs)
    assert c.time_s == pytest.approx(3 * tile + 2.05e-6)

"""The accelerator cost model against arithmetic done by hand (each derivation written out).

H100's compute is calibrated (0.7009 of every datasheet peak, CAL-GEMM-H100) and its HBM (0.8866); it has no
op_overhead and no L2 calibration, so the default launch (5 µs) and memory derating (0.8 of the L2) apply.
"""

from itertools import pairwise

import pytest

from perfsim.analysis.gemm_sweep import gemm_efficiency_sweep, plot_gemm_efficiency
from perfsim.cost import cost
from perfsim.cost.accelerator import accelerator_cost, derated_roofline, is_calibrated, uncalibrated_fields
from perfsim.cost.attention_kernels import decode_plan, query_tile_visits
from perfsim.cost.dequant import dequant_ops
from perfsim.cost.derating import DEFAULT_LAUNCH_S, DEFAULT_MEMORY_EFFICIENCY
from perfsim.cost.gemm_tiles import gemm_waves, split_candidates, tile_for
from perfsim.errors import PerfsimError
from perfsim.hardware import Accelerator, load_hardware
from perfsim.ops import Attention, Gemm, Norm, parse_op

H100 = load_hardware("h100-sxm")
HBM = 3.35e12 * 0.8866  # calibrated stream bandwidth
L2 = 12e12 * DEFAULT_MEMORY_EFFICIENCY
SM_DRAW = 231e9  # bytes/s one SM draws from HBM or L2 (calibration.core_bandwidth)
H100_EFF = 0.7009  # calibration.compute_efficiency, CAL-GEMM-H100
SM_BF16 = 989.4e12 * H100_EFF / 132  # one SM's sustained tensor rate
LAUNCH = 2.43e-6  # calibration.op_overhead, CAL-LAUNCH-H100 (65,536 B per kernel at 27 GB/s on its sibling H200)


def test_waves_and_padded_work_of_a_gemm_that_does_not_fill_the_last_wave():
    # 4000³ in 128×256×64 tiles: ⌈4000/128⌉ = 32 tile rows, ⌈4000/256⌉ = 16 tile columns = 512 tiles;
    # 512 / 132 SMs = 3.88 → 4 waves, the last with 512 − 3·132 = 116 tiles (16 SMs idle).
    # K = 4000 runs in ⌈4000/64⌉ = 63 steps = 4032 deep; edge tiles computed whole (4096 × 4096 outputs).
    tile = tile_for(H100, "bf16")
    assert (tile.m, tile.n, tile.k) == (128, 256, 64)
    w = gemm_waves(4000, 4000, 4000, 1, tile, 132)
    assert (w.tiles_m, w.tiles_n, w.tiles, w.k_steps, w.waves) == (32, 16, 512, 63, 4)
    assert w.padded_flops == 2 * 4096 * 4096 * 4032
    assert w.occupancy == pytest.approx(512 / (4 * 132))
    # Split-K candidates: 512 tiles already exceed 132 SMs, so only 1 and 2 are tried; 2 gives 1024 units in
    # 8 waves of ⌈63/2⌉ = 32 steps = 256 step-times, worse than 4 × 63 = 252, so the kernel runs unsplit:
    assert split_candidates(512, 132, 63) == [1, 2]
    c = cost(Gemm(m=4000, n=4000, k=4000, dtype="bf16"), H100)
    assert c.resource_s["compute:bf16"] == pytest.approx(4 * 2 * 128 * 256 * 4032 / SM_BF16)
    assert c.bound == "compute:bf16"
    assert c.flops == 2 * 4000**3  # useful work; the padding only costs time


def test_64_cubed_gemm_is_launch_bound():
    # The tile family's short tile, 64×256 (the spec's 128×256 cut to 64 rows), holds it in one tile (64×64
    # padded to 64×256), one K step: 2·64·256·64 FLOP at one SM = 0.40 µs of compute (the 128-row tile: 0.80 µs).
    # A, B, C = 3 × 64·64·2 B = 24,576 B from HBM, streamed by 1 SM at its own 231 GB/s (calibration.core_bandwidth,
    # far below HBM): 24,576 / 231 GB/s = 0.106 µs. The op takes the compute plus the 2.43 µs launch: launch-bound.
    c = cost(Gemm(m=64, n=64, k=64, dtype="bf16"), H100)
    hbm, compute = 24_576 / SM_DRAW, 2 * 64 * 256 * 64 / SM_BF16
    assert c.resource_s["memory:hbm"] == pytest.approx(hbm)
    assert c.time_s == pytest.approx(compute + LAUNCH)
    assert c.time_s >= LAUNCH
    assert c.bound == "overhead"


def test_attention_prefill_bytes_count_the_kv_tile_rereads():
    # 8 heads (MHA), head_dim 128, 1024 causal queries over 1024 keys, bf16, Br = Bc = 128 on H100.
    # Query tile i (i = 0..7) ends at position 128(i+1) and visits i+1 KV tiles: 36 visits, 8 at most,
    # 128 · 36 = 4608 keys read per head.
    assert query_tile_visits(1024, 1024, 128, 128, True) == (36, 8, 4608)
    op = Attention(heads=8, head_dim=128, q_len=1024, kv_len=1024, dtype="bf16")
    c = accelerator_cost(op, H100)
    tensor = 8 * 1024 * 128 * 2  # one of Q, K, V, O: 2 MiB
    # compulsory: Q, K, V read once, O written once, from HBM
    assert c.bytes_per_level["hbm"] == 4 * tensor
    # re-reads: K and V of (4608 − 1024) more keys per head; a wave spans all 8 heads (⌈132/8⌉ + 1 ≥ 8),
    # whose K and V (4 MiB) fit the 50 MiB L2, so the re-reads hit L2
    assert c.bytes_per_level["l2"] == 2 * 8 * (4608 - 1024) * 128 * 2
    assert c.bytes == 4 * tensor + 2 * 8 * 3584 * 128 * 2
    # 64 units in one wave: the longest unit (8 tiles) sets the time; per tile QKᵀ + PV on the tensor cores,
    # then 4 fp32 element ops per score (vector: 66.9 TFLOP/s · 0.7009 / 2 per s) and one exp (SFU: 16/clk/SM,
    # derated like the vector units)
    tile_s = (4 * 128 * 128 * 128 / SM_BF16
              + 128 * 128 * 4 / (66.9e12 * H100_EFF / 2 / 132) + 128 * 128 / (16 * 1.83e9 * H100_EFF))
    assert c.resource_s["compute:bf16"] == pytest.approx(8 * tile_s)


def test_decode_splits_the_kv_sequence_to_fill_the_sms():
    # Batch 1, 32 query heads over 8 KV heads (GQA group 4), one query, 8192 keys, bf16, Bc = 128 (64 tiles).
    # Unsplit: 8 units on 132 SMs. Every split 1 … min(64 tiles, ⌊3·132/8⌋ = 49) is tried. 16 splits: 128 units,
    # one wave on 128 of 132 SMs, 4 whole tiles each. 32 splits: two such waves of 2 tiles (same pace, twice the
    # partials). 33 splits of ⌈64/33⌉ = 2 tiles hold only 32 non-empty chunks: each unit still waits for a 2-tile
    # chunk, so no split beats 16, which re-reads Q and writes partials least.
    op = Attention(heads=32, kv_heads=8, head_dim=128, q_len=1, kv_len=8192, dtype="bf16")
    split, c = decode_plan(op, H100)
    assert split == 16
    # GQA: K and V read once per KV head (8 · 8192 · 128 · 2 B each), Q read by each of 16 chunks; the combine
    # kernel writes O once
    kv = 8 * 8192 * 128 * 2
    q = 32 * 128 * 2
    assert c.bytes_per_level["hbm"] == 2 * kv + 16 * q + q
    # fp32 partial O (128 values + log-sum-exp) per head per split, written by the chunks, read back by the combine
    # kernel, fit L2
    partials = 16 * 32 * 129 * 4
    assert c.bytes_per_level["l2"] == 2 * partials
    # 128 of 132 SMs streaming draw up to 128 × 231 GB/s = 29.6 TB/s, above both HBM (2.97) and L2 (9.6 TB/s)
    chunks = max((2 * kv + 16 * q) / HBM, partials / L2)
    # the combine: one unit per query row of a head, 32 rows on 32 of the 132 SMs, which draw 32 × 231 GB/s =
    # 7.39 TB/s: HBM still streams whole, L2 at 7.39 TB/s; its partials read binds
    combine = max(q / min(HBM, 32 * SM_DRAW), partials / min(L2, 32 * SM_DRAW))
    assert combine == partials / (32 * SM_DRAW)
    assert c.bound == "memory:hbm"  # the resource binding most of the sequence carries it whole
    assert c.resource_s["memory:hbm"] == pytest.approx(chunks + combine)
    assert c.time_s == pytest.approx(chunks + combine + 2 * LAUNCH)  # the kernel and the combine kernel
    unsplit = (2 * kv + 2 * q) / (HBM * 8 / 132) + LAUNCH  # 8 SMs streaming alone
    assert unsplit / c.time_s > 8


def test_q4_0_gemv_dequantisation_overlaps_the_weight_stream():
    # M2 GPU (10 cores, ALUs only: fp16 3.579 TFLOP/s × calibrated 0.79), LPDDR5 100 GB/s × calibrated 0.90
    # (CAL-MEM-M2); launch 5.16 µs per dispatch (CAL-LAUNCH-M2, measured on the sibling M2 Pro).
    # y = x · W with W 4096 × 4096 in q4_0 (4.5 bits/weight): the GEMV kernel runs on the ALUs.
    m2 = load_hardware("m2-gpu")
    op = Gemm(m=1, n=4096, k=4096, dtype="fp16", weight_dtype="q4_0")
    c = accelerator_cost(op, m2)
    alu = 3.579e12 * 0.79
    macs = 2 * 4096 * 4096 / alu  # 11.9 µs
    dequant = 4096 * 4096 * 5 / (alu / 2)  # unpack 2 + offset 1 + convert 1 + scale 1 per weight: 59.3 µs
    assert c.resource_s["compute:fp16"] == pytest.approx(macs + dequant)
    moved = 4096 * 2 + 4096 * 4096 * 4.5 / 8 + 4096 * 2  # x, W, y
    stream = moved / (100e9 * 0.90)  # 9,453,568 B / 90 GB/s = 105.0 µs
    assert c.resource_s["memory:lpddr5"] == pytest.approx(stream)
    # overlapped: the op takes the longer of the weight stream and the ALU work, not their sum
    assert c.time_s == pytest.approx(stream + 5.16e-6)
    assert c.bound == "memory:lpddr5"


def test_dequant_ops_per_weight_format():
    # unpack (sub-byte) 2 + offset (unsigned sub-byte int) 1 + convert 1 + scale 1
    assert dequant_ops("q4_0") == dequant_ops("int4") == dequant_ops("ternary") == 5
    assert dequant_ops("mxfp4") == 4  # fp4: no zero point
    assert dequant_ops("q8_0") == dequant_ops("int8") == dequant_ops("fp8_e4m3") == 2


def test_fp8_runs_on_fp8_units_where_the_chip_has_them():
    op = Gemm(m=4096, n=4096, k=4096, dtype="fp8_e4m3")
    on_h100 = accelerator_cost(op, H100)
    assert "compute:fp8_e4m3" in on_h100.resource_s
    # per-tensor scales applied to the 4096² outputs in the epilogue: 2 element ops each on the vector units
    # (bf16 133.8 TFLOP/s · 0.7009 / 2 per s; fp8 has no vector rate, so it promotes to fp16 = 133.8 too)
    occupancy = 512 / (4 * 132)
    assert on_h100.resource_s["dequant"] == pytest.approx(4096**2 * 2 / (133.8e12 * H100_EFF / 2 * occupancy))
    on_a100 = accelerator_cost(op, load_hardware("a100-sxm-80gb"))
    assert "compute:fp16" in on_a100.resource_s  # A100 has no fp8 tensor cores: both operands converted
    assert on_a100.resource_s["dequant"] > on_h100.resource_s["dequant"]


def test_w8a8_int8_on_ascend_uses_the_int8_cube():
    c = accelerator_cost(Gemm(m=4096, n=4096, k=4096, dtype="int8"), load_hardware("ascend-910b"))
    assert "compute:int8" in c.resource_s
    assert "dequant" in c.resource_s  # per-channel × per-token rescale of the outputs on the vector units


MADE_UP = {
    "name": "made-up", "kind": "accelerator", "vendor": "nobody", "description": "a spec a user adds",
    "cores": 10, "clock": {"peak": 1e9, "source": "made up"},
    "compute": [{"name": "mm", "role": "matrix", "peak": {"bf16": 100e12}, "source": "made up"},
                {"name": "alu", "role": "vector", "peak": {"fp32": 10e12, "bf16": 20e12}, "source": "made up"}],
    "memory": [{"name": "hbm", "capacity": 2**34, "bandwidth": 1e12, "source": "made up"}],
}


def test_an_uncalibrated_spec_gets_the_default_derating():
    chip = Accelerator.model_validate(MADE_UP)
    assert not is_calibrated(chip)
    assert uncalibrated_fields(chip) == ["compute_efficiency", "memory_efficiency.hbm", "op_overhead"]
    # 1280³ bf16 in the default 128×128×32 tiles: 10 × 10 = 100 tiles on 10 cores = 10 waves, 40 K steps;
    # one tile-step is 2·128·128·32 FLOP at one core's 100 TFLOP/s · 0.7 / 10
    c = accelerator_cost(Gemm(m=1280, n=1280, k=1280, dtype="bf16"), chip)
    assert c.resource_s["compute:bf16"] == pytest.approx(10 * 40 * 2 * 128 * 128 * 32 / (100e12 * 0.7 / 10))
    assert c.overhead_s == DEFAULT_LAUNCH_S
    # any other op: the roofline with memory at 0.8 of the datasheet, plus one launch
    norm = derated_roofline(Norm(rows=4096, cols=4096, dtype="bf16"), chip)
    assert norm.resource_s["memory:hbm"] == pytest.approx((2 * 4096 * 4096 + 4096) * 2 / (1e12 * 0.8))  # x, y, gain
    assert norm.time_s == pytest.approx(norm.resource_s["memory:hbm"] + DEFAULT_LAUNCH_S)


def test_a_calibrated_spec_uses_its_calibration_and_no_default():
    calibration = {"compute_efficiency": {"value": 0.9, "source": "a GEMM microbenchmark"},
                   "memory_efficiency": {"hbm": {"value": 0.85, "source": "a stream copy"}},
                   "op_overhead": {"value": 3e-6, "source": "an empty-kernel launch"}}
    chip = Accelerator.model_validate({**MADE_UP, "calibration": calibration})
    assert is_calibrated(chip)
    c = accelerator_cost(Gemm(m=1280, n=1280, k=1280, dtype="bf16"), chip)
    assert c.resource_s["compute:bf16"] == pytest.approx(10 * 40 * 2 * 128 * 128 * 32 / (100e12 * 0.9 / 10))
    assert c.overhead_s == 3e-6
    norm = accelerator_cost(Norm(rows=4096, cols=4096, dtype="bf16"), chip)
    assert norm.resource_s["memory:hbm"] == pytest.approx((2 * 4096 * 4096 + 4096) * 2 / (1e12 * 0.85))


def test_gemm_efficiency_sweep_rows_are_the_cost_models_throughput():
    frame = gemm_efficiency_sweep(["h100-sxm"], sizes=(4000,), rows=(16,))
    assert list(frame["sweep"]) == ["square", "skinny"]
    square = frame.iloc[0]
    expected = accelerator_cost(Gemm(m=4000, n=4000, k=4000, dtype="bf16"), H100)
    assert square["tflop_per_s"] == pytest.approx(2 * 4000**3 / expected.time_s / 1e12)
    assert square["fraction_of_peak"] == pytest.approx(square["tflop_per_s"] / 989.4)
    assert (frame.iloc[1]["m"], frame.iloc[1]["n"], frame.iloc[1]["k"]) == (16, 8192, 8192)
    assert frame["calibrated"].all()  # compute, HBM and launch all calibrated (CAL-GEMM/HBM/LAUNCH-H100)
    assert plot_gemm_efficiency(frame).axes


def test_gemm_efficiency_sweep_rejects_a_cpu():
    with pytest.raises(PerfsimError, match="raspberry-pi-5 is a cpu"):
        gemm_efficiency_sweep(["raspberry-pi-5"])


def test_decode_attention_never_gets_faster_with_a_longer_context():
    # kv_len 1025 (17 tiles, a 9-way split) came out 0.3 % faster than 1024 (16 tiles, 8-way) on an H100 when each
    # unit was priced for its average share of the KV stream: every unit now waits for the longest chunk (whole
    # tiles) and every split is tried. What is left is the query and output rows, read once whatever the length,
    # streaming at a fuller wave: under 1e-5 of the time.
    h100 = load_hardware("h100-sxm")
    times = [cost(parse_op(f"attention heads=4 kv_heads=4 q_len=1 kv_len={n} head_dim=80 dtype=fp16"), h100).time_s
             for n in range(960, 1100)]
    assert all(later >= earlier * (1 - 1e-5) for earlier, later in pairwise(times))

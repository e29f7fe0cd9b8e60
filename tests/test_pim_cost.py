"""The pim cost model (perfsim.cost.pim) on duplex-logic-pim, checked against hand-derived numbers.

duplex-logic-pim, from its spec: xPU datasheet 989.4 TFLOP/s (bf16/fp16 matrix), 66.9 TFLOP/s (fp32 vector),
B = 3.35 TB/s (hbm), 132 SMs; no calibration, so the accelerator model (perfsim.cost.derating) prices it at the
stated defaults: R_x = 0.7 × 989.4 = 692.58 TFLOP/s, B_x = 0.8 × 3.35 = 2.68 TB/s, 5 µs per kernel launch, and
(no gemm_tiles / attention_tiles in a pim spec) 128 × 128 × 32 GEMM tiles and 128 × 128 attention tiles.
PIM: 5 stacks × 2.68 TB/s = B_p = 13.4 TB/s, 5 × 21.3 TFLOP/s = R_p = 106.5 TFLOP/s; every op is one kernel
launch whichever unit runs it, so the PIM side pays the same 5 µs.
h100-sxm: the same peaks, its hbm derated to 3.35 TB/s × 0.8866 = 2.970 TB/s (CAL-HBM-H100), 2.43 µs launch
(CAL-LAUNCH-H100).
"""

from pathlib import Path

import pytest

from perfsim.analysis.pim_plots import plot_gain, plot_pim_roofline
from perfsim.analysis.pim_study import decode_sweep, max_qps, placed_ops
from perfsim.cost import cost
from perfsim.cost.pim import crossover_intensity, pim_cost, pim_energy_j, placement, unit_of, xpu_cost, xpu_only
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op
from perfsim.validation.case import load_cases
from perfsim.validation.predict import predict

R_X, B_X = 0.7 * 989.4e12, 0.8 * 3.35e12
R_P, B_P = 5 * 21.3e12, 5 * 2.68e12
B_H100 = 3.35e12 * 0.8866
LAUNCH = 5e-6  # duplex-logic-pim: the stated default
H100_LAUNCH = 2.43e-6  # h100-sxm's op_overhead
GEMV = "gemm m=1 n=16384 k=16384 dtype=fp16 weight_shared=true"
GQA = "attention heads=32 kv_heads=4 q_len=1 kv_len=4096 batch=64"
MOE = "moe tokens=64 hidden=4096 expert_ffn=14336 experts=8 top_k=2"


@pytest.fixture(scope="module")
def duplex():
    return load_hardware("duplex-logic-pim")


@pytest.fixture(scope="module")
def h100():
    return load_hardware("h100-sxm")


def test_crossover_op_b_is_pim_compute_over_sustained_xpu_bandwidth(duplex):
    # Both memory bound below the PIM ridge R_P/B_P = 7.95: the PIM wins by B_P/B_X = 5. Between 7.95 and the
    # xPU ridge 258 the PIM takes F/R_P and the xPU Q/B_X (both plus one launch): equal at F/Q = R_P/B_X =
    # 106.5 / 2.68 = 39.74 FLOP/B.
    assert crossover_intensity(duplex, "fp16") == pytest.approx(R_P / B_X)
    # gemm m × 16384 × 16384, weights shared: Q = 2(2^28 + 2m·2^14) bytes, F = 2m·2^28, Op/B = m/(1 + 2m/2^14).
    # Tile occupancy moves it: m ≤ 128 rows make 1 × 128 tiles of 128 × 128 on 132 SMs, one wave (K splits of 2
    # and 3 fill no more SMs), so the xPU streams at 128/132 of B_X and the crossover is R_P/(B_X·128/132) = 40.98.
    below, above = parse_op(GEMV.replace("m=1", "m=41")), parse_op(GEMV.replace("m=1", "m=42"))
    assert below.intensity == pytest.approx(41 / (1 + 82 / 16384))  # 40.80: above 39.74, below 40.98
    assert above.intensity == pytest.approx(42 / (1 + 84 / 16384))  # 41.79 > 40.98
    assert crossover_intensity(duplex, "fp16") < below.intensity < R_P / (B_X * 128 / 132) < above.intensity
    low, high = placement(below, duplex), placement(above, duplex)
    # xPU compute: one wave of 128 × 128 × 16384 tiles, 2^29 FLOP each at R_X/132 per SM = 102.3 us < memory.
    assert (low.unit, low.pim_fraction) == ("pim", 1.0)
    assert low.time_s == pytest.approx(LAUNCH + 2 * 41 * 2**28 / R_P)  # 211.68 us (PIM compute + launch)
    assert low.xpu_s == pytest.approx(LAUNCH + 2 * (2**28 + 82 * 2**14) / (B_X * 128 / 132))  # 212.62 us
    assert (high.unit, high.pim_fraction) == ("xpu", 0.0)
    assert high.time_s == pytest.approx(LAUNCH + 2 * (2**28 + 84 * 2**14) / (B_X * 128 / 132))  # 212.64 us
    assert high.pim_s == pytest.approx(LAUNCH + 2 * 42 * 2**28 / R_P)  # 216.72 us


def test_gemv_runs_more_than_twice_as_fast_as_on_h100(duplex, h100):
    # Op/B 1: memory bound everywhere. Q = 2(2^14 + 2^28 + 2^14) bytes; Duplex Q/B_P, H100 Q/(3.35 TB/s·0.8866) in
    # its GEMV kernel (every SM streaming); each plus its kernel launch (5 µs default, 2.43 µs calibrated).
    op = parse_op(GEMV)
    q = 2 * (2**28 + 2 * 2**14)
    duplex_cost, h100_cost = cost(op, duplex), cost(op, h100)  # issue 17 acceptance: through cost()
    assert duplex_cost.time_s == pytest.approx(q / B_P + LAUNCH)  # 45.07 us
    assert h100_cost.time_s == pytest.approx(q / B_H100 + H100_LAUNCH)  # 183.21 us
    assert h100_cost.time_s / duplex_cost.time_s == pytest.approx(4.065, rel=1e-3)
    assert duplex_cost.bound == "memory:pim" and unit_of(duplex_cost) == "pim"
    assert not duplex_cost.calibrated  # the launch and the xPU's rates are defaults


def test_gqa_decode_attention_co_processed_bounded_by_the_shared_banks(duplex, h100):
    # K and V: 64 seqs × 4 KV heads × 4096 × 128 × 2 B each; q and o: 64 × 32 × 128 × 2 B each.
    q = 2 * 64 * 4 * 4096 * 128 * 2 + 2 * 64 * 32 * 128 * 2  # 537,919,488 B
    f = 4 * 64 * 32 * 4096 * 128 + 5 * 64 * 32 * 4096  # QK^T and PV, softmax (three-pass reload, 5 FLOP/score)
    op = parse_op(GQA)
    assert (op.bytes, op.flops) == (q, f)
    # The xPU runs flash-decoding: 64 seqs × 4 KV heads = 256 units of 8 packed query rows, unsplit (2 splits add no
    # fill), in 2 waves on 132 SMs, so HBM streams at 256/264 of B_X: 206.99 us. The tiles take less: per 128-key
    # tile 4·128³ FLOP at R_X/132 per SM (1.599 us) + 8 × 128 scores × 5 element ops at 0.7 × 66.9/2 T/s / 132
    # (0.029 us); 2 waves × 32 tiles × 1.628 us = 104.2 us.
    busy, pim_busy, banks_s = q / (B_X * 256 / 264), f / R_P, q / B_P  # 206.99, 40.72 (compute), 40.14 us
    p = placement(op, duplex)
    assert p.xpu_s == pytest.approx(LAUNCH + busy) and p.pim_s == pytest.approx(LAUNCH + pim_busy)
    # Equal finish: busy·pim_busy/(busy + pim_busy) = 34.03 us, below what the banks deliver, so T = launch + Q/B_P
    # and the PIM takes the largest share it finishes in that time: f = banks_s / pim_busy = 0.986.
    assert busy * pim_busy / (busy + pim_busy) < banks_s
    assert (p.unit, p.time_s) == ("both", pytest.approx(LAUNCH + banks_s))  # 45.14 us < 45.72 us on the PIM alone
    assert p.pim_fraction == pytest.approx(banks_s / pim_busy)
    # H100 runs the same kernel on its 132 SMs (256 units in 2 waves): 256/264 × 132 = 128 SMs busy on average draw
    # up to 128 × 231 GB/s (calibration.core_bandwidth) = 29.6 TB/s, so HBM at its full measured rate binds
    h100_s = q / B_H100 + H100_LAUNCH  # 181.11 + 2.43 = 183.54 us
    ratio = cost(op, h100).time_s / cost(op, duplex).time_s  # issue 17 acceptance: through cost()
    assert ratio == pytest.approx(h100_s / (LAUNCH + banks_s)) == pytest.approx(183.54 / 45.14, rel=1e-3)


def test_moe_experts_split_so_both_units_finish_together(duplex):
    # 8 experts, top-2, 64 tokens: all experts touched but 8·0.75^64 ≈ 1e-7; expert weights 3·4096·14336·2 B.
    # The xPU runs the MoE as its seven kernels (perfsim.cost.moe_kernels, checked in tests/test_moe_kernels.py):
    # `busy` seconds one after another, memory-bound, never less than Q/B_X (1052.1 us), plus 7 launches.
    touched = 8 * (1 - 0.75**64)
    q = 2 * 64 * 4096 * 2 + touched * 3 * 4096 * 14336 * 2 + 4096 * 8 * 2  # x, y, experts, router
    f = 2 * 64 * 2 * 3 * 4096 * 14336 + 2 * 64 * 4096 * 8  # routed experts + router
    xpu = xpu_cost(parse_op(MOE), duplex)
    (bound, busy), launches = xpu.busiest, 7 * LAUNCH
    assert bound == "memory:hbm" and busy >= q / B_X and xpu.overhead_s == pytest.approx(launches)
    pim_s = f / R_P  # 423.5 us (compute; its banks need only 210.4 us)
    share = busy / (busy + pim_s)  # xPU (1 − share)·busy = PIM share·pim_s
    c, p = pim_cost(parse_op(MOE), duplex), placement(parse_op(MOE), duplex)
    assert (p.unit, p.pim_fraction) == ("both", pytest.approx(share))
    assert c.time_s == p.time_s == pytest.approx(launches + busy * pim_s / (busy + pim_s))
    assert c.resource_s["memory:hbm"] == pytest.approx((1 - share) * busy)  # the xPU side, memory bound
    assert c.resource_s["compute:bf16"] == pytest.approx((1 - share) * xpu.resource_s["compute:bf16"])
    assert c.resource_s["pim:bf16"] == pytest.approx(share * pim_s)
    hbm = (1 - share) * xpu.bytes_per_level["hbm"]
    assert c.resource_s["memory:pim"] == pytest.approx((hbm + share * q) / B_P)  # every byte crosses the path
    assert c.bytes_per_level == {"hbm": pytest.approx(hbm), "pim": pytest.approx(share * q)}
    assert unit_of(c) == "both"


def test_memory_bound_on_the_pim_is_not_split(duplex):
    # g = 4: Op/B ≈ 4 < the PIM ridge 7.95, so the banks bind the PIM alone; splitting cannot beat Q/B_P.
    op = parse_op("attention heads=32 kv_heads=8 q_len=1 kv_len=4096 batch=64")
    p = placement(op, duplex)
    assert (p.unit, p.pim_fraction) == ("pim", 1.0)
    assert p.time_s == pytest.approx(LAUNCH + op.bytes / B_P)  # 85.21 us


def test_small_projections_pay_split_k_on_the_xpu(duplex):
    # Mixtral's per-chip projections at batch 64 (tp = 2). qkv 64 × 3072 × 4096: 24 tiles of 128 × 128 fill 24 of
    # 132 SMs; K split 11 ways makes 264 units in 2 full waves (split 4: 96 units, one wave at 96/132; 8 and 16 fill
    # no more). Its fp32 partials, 11·64·3072·4 B written and read back, and a second read of A (the 24 tiles span
    # 2 waves of 12) go to HBM (the spec has no cache level): 26,083,328 + 2·8,650,752 + 524,288 B at B_X = 16.38 us
    # (split 4: (26,083,328 + 2·3,145,728)/(B_X·96/132) = 16.61 us). The PIM: 2·64·3072·4096 / R_P = 15.12 us.
    qkv = placement(parse_op("gemm m=64 n=3072 k=4096 weight_shared=true"), duplex)
    assert qkv.xpu_s == pytest.approx(LAUNCH + (26_083_328 + 2 * 8_650_752 + 524_288) / B_X)  # 21.38 us
    assert (qkv.unit, qkv.time_s) == ("pim", pytest.approx(LAUNCH + 2 * 64 * 3072 * 4096 / R_P))  # 20.12 us
    # o_proj 64 × 4096 × 2048: 32 tiles, split 4 gives 128 units in one wave (128/132 busy; 8 and 12 no fuller):
    # 17,563,648 + 2·4·64·4096·4 B at B_X·128/132 = 9.99 us against the PIM's 2·64·4096·2048 / R_P = 10.08 us.
    o_proj = placement(parse_op("gemm m=64 n=4096 k=2048 weight_shared=true"), duplex)
    assert (o_proj.unit, o_proj.time_s) == ("xpu", pytest.approx(LAUNCH + (17_563_648 + 2 * 4_194_304)
                                                                 / (B_X * 128 / 132)))  # 14.99 us
    assert o_proj.pim_s == pytest.approx(LAUNCH + 2 * 64 * 4096 * 2048 / R_P)  # 15.08 us


def test_vector_ops_and_big_gemms_stay_on_the_xpu(duplex):
    norm, gemm = parse_op("norm rows=64 cols=4096"), parse_op("gemm m=4096 n=4096 k=4096")
    for op in (norm, gemm):
        c, alone = pim_cost(op, duplex), xpu_cost(op, duplex)
        assert unit_of(c) == "xpu" and c.time_s == alone.time_s
    assert pim_cost(norm, duplex).bytes_per_level == {"hbm": norm.bytes}
    assert pim_cost(norm, duplex).resource_s["memory:pim"] == pytest.approx(norm.bytes / B_P)  # xPU reads cross it
    # 4096³: 32 × 32 tiles in 8 waves of 132 (split 1; split 2 fills no more); each wave a block of 11 × 12 tiles,
    # so A is read 8·11/32 = 2.75 times and B 8·12/32 = 3 times, from HBM (no cache level in the spec). Compute:
    # 8 waves × 2·128·128·32·128 FLOP at R_X/132 per SM = 204.6 us > memory 87.2 us.
    a = 4096 * 4096 * 2
    c = pim_cost(gemm, duplex)
    assert c.bytes_per_level == {"hbm": pytest.approx(3 * a + 1.75 * a + 2 * a)}  # 226,492,416 B
    assert c.resource_s["memory:pim"] == pytest.approx(6.75 * a / B_P)  # re-reads cross the internal path too
    assert c.time_s == pytest.approx(LAUNCH + 8 * 2 * 128 * 128 * 32 * 128 / (R_X / 132))  # 209.6 us
    assert placement(norm, duplex).pim_s is None  # no PIM unit for vector ops
    assert placement(gemm, duplex).pim_s == pytest.approx(LAUNCH + 2 * 4096**3 / R_P)


def test_energy_charges_each_path(duplex):
    # 0.464 nJ per 32 B over the internal path, 0.891 nJ over the external one, 0.23 pJ per FLOP. The xPU's GEMV
    # kernel streams every byte once.
    op = parse_op(GEMV)
    on_pim, on_xpu = pim_cost(op, duplex), xpu_cost(op, duplex)
    assert pim_energy_j(on_pim, duplex.pim) == pytest.approx(op.bytes * 0.464e-9 / 32 + op.flops * 0.23e-12)
    assert pim_energy_j(on_xpu, duplex.pim) == pytest.approx(op.bytes * 0.891e-9 / 32 + op.flops * 0.23e-12)
    no_energy = duplex.pim.model_copy(update={"energy_per_flop": None})
    with pytest.raises(PerfsimError, match="energy_per_flop"):
        pim_energy_j(on_pim, no_energy)


def test_bank_pim_wins_at_op_b_one_and_loses_at_eight(duplex):
    # Bank PIM: 5 × 10.72 TB/s = 53.6 TB/s and 53.6 TFLOP/s (Op/B 1); its crossover 53.6/2.68 = 20.
    bank = load_hardware("duplex-bank-pim")
    assert crossover_intensity(bank, "fp16") == pytest.approx(20.0)
    gemv = parse_op(GEMV)
    assert pim_cost(gemv, bank).time_s == pytest.approx(LAUNCH + gemv.bytes / 53.6e12)  # 10.0 + 5 us
    attention = parse_op(GQA)  # Op/B 8.06: bank PIM compute bound, 80.9 us alone vs Logic-PIM's 40.7 us
    assert placement(attention, bank).pim_s == pytest.approx(LAUNCH + attention.flops / 53.6e12)
    # co-processed with the xPU's 207.0 us: 207.0·80.9/(207.0 + 80.9) = 58.2 us > Logic-PIM's banks, 40.1 us
    assert pim_cost(attention, bank).time_s > pim_cost(attention, duplex).time_s


def test_xpu_only_is_the_same_chip_without_pim(duplex):
    gpu = xpu_only(duplex)
    assert gpu.kind == "accelerator" and gpu.main.bandwidth == 3.35e12
    for text in (GQA, GEMV, MOE):
        op = parse_op(text)
        assert cost(op, gpu).time_s == pytest.approx(xpu_cost(op, duplex).time_s)
    # The GEMV kernel (one row) streams its weights at B_X on every SM: 536.9 MB / 2.68 TB/s + 5 us = 205.3 us.
    gemv = cost(parse_op(GEMV), gpu)
    assert gemv.time_s == pytest.approx(2 * (2**28 + 2 * 2**14) / B_X + LAUNCH) and not gemv.calibrated


def test_pim_cost_refuses_other_kinds(h100):
    with pytest.raises(PerfsimError, match="h100-sxm is of kind accelerator"):
        pim_cost(parse_op(GEMV), h100)


def test_stacks_must_be_the_main_memory(tmp_path):
    spec = Path(load_hardware.__globals__["SPEC_DIR"]) / "duplex-logic-pim.yaml"
    wrong = tmp_path / "duplex-logic-pim.yaml"
    wrong.write_text(spec.read_text().replace("capacity_per_stack: 16 GiB", "capacity_per_stack: 8 GiB"))
    with pytest.raises(PerfsimError, match="capacity_per_stack"):
        load_hardware(str(wrong))


def test_duplex_identity_cases_hold():
    # DX-03: n = 8 tokens through one expert, Op/B ≈ 8; DX-04: GQA with g = 8, Op/B ≈ 8 (validation/pim_duplex.yaml).
    cases = {c.id: c for c in load_cases([Path(__file__).resolve().parents[1] / "validation" / "pim_duplex.yaml"])}
    for case_id in ("DX-03", "DX-04"):
        assert predict(cases[case_id]).value == pytest.approx(8, rel=0.01)


def test_mixtral_decode_step_gains_at_most_the_bandwidth_ratio():
    # No op can gain more than B_P / B_H100 = 4.51 (memory bound, one launch each) or (R_X + R_P) / (0.7009 ×
    # 989.4 TFLOP/s) = 1.15 (compute bound, H100's calibrated rate).
    frame = decode_sweep("mixtral-8x7b", ["duplex-logic-pim", "h100-sxm"], [64], 384, devices=2, tp=2)
    duplex_row, h100_row = frame.iloc[0], frame.iloc[1]
    assert 2 < duplex_row.tokens_per_s / h100_row.tokens_per_s < B_P / B_H100
    assert duplex_row.energy_per_token_j < h100_row.energy_per_token_j
    placed = {op.label: op.placement.unit for op in placed_ops("mixtral-8x7b", devices=2, tp=2, batch=64,
                                                               context=384)}
    # qkv and o_proj as in test_small_projections_pay_split_k_on_the_xpu
    assert ([placed[label] for label in ("attention", "experts", "qkv", "o_proj", "attn_norm")]
            == ["pim", "both", "pim", "xpu", "xpu"])


def test_serving_runs_through_the_pim_model():
    duplex_qps = max_qps("mixtral-8x7b", "duplex-logic-pim", 256, 64, max_batch=16, requests=32, devices=2, tp=2)
    h100_qps = max_qps("mixtral-8x7b", "h100-sxm", 256, 64, max_batch=16, requests=32, devices=2, tp=2)
    assert duplex_qps > h100_qps


def test_plots_return_figures(duplex):
    ops = placed_ops("mixtral-8x7b", devices=2, tp=2, batch=8, context=256)
    assert plot_pim_roofline(duplex, ops).axes
    frame = decode_sweep("mixtral-8x7b", ["duplex-logic-pim", "h100-sxm"], [1, 2], 256, devices=2, tp=2)
    assert plot_gain(frame, "h100-sxm").axes
    with pytest.raises(PerfsimError, match="baseline 'a100'"):
        plot_gain(frame, "a100")

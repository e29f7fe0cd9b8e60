"""The pim cost model (perfsim.cost.pim) on duplex-logic-pim, checked against hand-derived numbers.

duplex-logic-pim, from its spec: xPU R_x = 989.4 TFLOP/s (bf16/fp16 matrix), B_x = 3.35 TB/s (hbm, no
calibration); PIM: 5 stacks × 2.68 TB/s = B_p = 13.4 TB/s, 5 × 21.3 TFLOP/s = R_p = 106.5 TFLOP/s.
h100-sxm: the same peaks, its hbm derated to 3.35 TB/s × 0.8866 = 2.970 TB/s (CAL-HBM-H100).
"""

from pathlib import Path

import pytest

from perfsim.analysis.pim_plots import plot_gain, plot_pim_roofline
from perfsim.analysis.pim_study import decode_sweep, max_qps, placed_ops
from perfsim.cost import cost
from perfsim.cost.pim import crossover_intensity, pim_cost, pim_energy_j, placement, unit_of, xpu_cost, xpu_only
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.ops import Collective, parse_op
from perfsim.validation.case import load_cases
from perfsim.validation.predict import predict

R_X, B_X = 989.4e12, 3.35e12
R_P, B_P = 5 * 21.3e12, 5 * 2.68e12
B_H100 = 3.35e12 * 0.8866
GEMV = "gemm m=1 n=16384 k=16384 dtype=fp16 weight_shared=true"
GQA = "attention heads=32 kv_heads=4 q_len=1 kv_len=4096 batch=64"
MOE = "moe tokens=64 hidden=4096 expert_ffn=14336 experts=8 top_k=2"


@pytest.fixture(scope="module")
def duplex():
    return load_hardware("duplex-logic-pim")


@pytest.fixture(scope="module")
def h100():
    return load_hardware("h100-sxm")


def test_crossover_op_b_is_pim_compute_over_xpu_bandwidth(duplex):
    # Both memory bound below the PIM ridge R_P/B_P = 7.95: the PIM wins by B_P/B_X = 4. Between 7.95 and the
    # xPU ridge 295 the PIM takes F/R_P and the xPU Q/B_X: equal at F/Q = R_P/B_X = 106.5/3.35 = 31.79 FLOP/B.
    assert crossover_intensity(duplex, "fp16") == pytest.approx(R_P / B_X)
    # gemm m × 16384 × 16384, weights shared: Q = 2(2^28 + 2m·2^14) bytes, F = 2m·2^28, Op/B = m/(1 + 2m/2^14).
    below, above = parse_op(GEMV.replace("m=1", "m=31")), parse_op(GEMV.replace("m=1", "m=32"))
    assert below.intensity == pytest.approx(31 / (1 + 62 / 16384))  # 30.88 < 31.79
    assert above.intensity == pytest.approx(32 / (1 + 64 / 16384))  # 31.88 > 31.79
    low, high = placement(below, duplex), placement(above, duplex)
    assert (low.unit, low.pim_fraction) == ("pim", 1.0)
    assert low.time_s == pytest.approx(2 * 31 * 2**28 / R_P)  # 156.27 us (PIM compute) < 160.87 us (xPU memory)
    assert low.xpu_s == pytest.approx(2 * (2**28 + 62 * 2**14) / B_X)
    assert (high.unit, high.pim_fraction) == ("xpu", 0.0)
    assert high.time_s == pytest.approx(2 * (2**28 + 64 * 2**14) / B_X)  # 160.89 us < 161.31 us on the PIM
    assert high.pim_s == pytest.approx(2 * 32 * 2**28 / R_P)


def test_gemv_runs_more_than_twice_as_fast_as_on_h100(duplex, h100):
    # Op/B 1: memory bound everywhere. Q = 2(2^14 + 2^28 + 2^14) bytes; Duplex Q/B_P, H100 Q/(B_X·0.8866) in its
    # GEMV kernel (every SM streaming) plus the default 5 µs kernel launch.
    op = parse_op(GEMV)
    q = 2 * (2**28 + 2 * 2**14)
    duplex_cost, h100_cost = pim_cost(op, duplex), cost(op, h100)
    assert duplex_cost.time_s == pytest.approx(q / B_P)  # 40.07 us
    assert h100_cost.time_s == pytest.approx(q / B_H100 + 5e-6)  # 185.78 us
    assert h100_cost.time_s / duplex_cost.time_s == pytest.approx(4.636, rel=1e-3)
    assert duplex_cost.bound == "memory:pim" and unit_of(duplex_cost) == "pim"


def test_gqa_decode_attention_co_processed_bounded_by_the_shared_banks(duplex, h100):
    # K and V: 64 seqs × 4 KV heads × 4096 × 128 × 2 B each; q and o: 64 × 32 × 128 × 2 B each.
    q = 2 * 64 * 4 * 4096 * 128 * 2 + 2 * 64 * 32 * 128 * 2  # 537,919,488 B
    f = 4 * 64 * 32 * 4096 * 128 + 5 * 64 * 32 * 4096  # QK^T and PV, softmax (three-pass reload, 5 FLOP/score)
    op = parse_op(GQA)
    assert (op.bytes, op.flops) == (q, f)
    xpu_s, pim_s, banks_s = q / B_X, max(f / R_P, q / B_P), q / B_P  # 160.57, 40.72 (compute), 40.14 us
    p = placement(op, duplex)
    assert p.xpu_s == pytest.approx(xpu_s) and p.pim_s == pytest.approx(f / R_P)
    # Equal finish: xpu_s·pim_s/(xpu_s + pim_s) = 32.48 us, below what the banks deliver, so T = Q/B_P and the
    # PIM takes the largest share it finishes in that time: f = banks_s / pim_s = 0.986.
    assert xpu_s * pim_s / (xpu_s + pim_s) < banks_s
    assert (p.unit, p.time_s) == ("both", pytest.approx(banks_s))
    assert p.pim_fraction == pytest.approx(banks_s / pim_s)
    # H100 runs the flash-decoding kernel: 64 seqs × 4 KV heads = 256 units, unsplit (2 splits add no fill), in 2
    # waves on 132 SMs, so HBM streams at 256 / 264 of its rate and binds (the tiles take ~107 us); plus 5 µs launch
    h100_s = q / (B_H100 * 256 / 264) + 5e-6
    assert cost(op, h100).time_s / p.time_s == pytest.approx(h100_s / banks_s) == pytest.approx(4.78, rel=1e-2)


def test_moe_experts_split_so_both_units_finish_together(duplex):
    # 8 experts, top-2, 64 tokens: all experts touched but 8·0.75^64 ≈ 1e-7; expert weights 3·4096·14336·2 B.
    touched = 8 * (1 - 0.75**64)
    q = 2 * 64 * 4096 * 2 + touched * 3 * 4096 * 14336 * 2 + 4096 * 8 * 2  # x, y, experts, router
    f = 2 * 64 * 2 * 3 * 4096 * 14336 + 2 * 64 * 4096 * 8  # routed experts + router
    xpu_s, pim_s = q / B_X, f / R_P  # 841.7 us (memory), 423.5 us (compute; its banks need only 210.4 us)
    share = xpu_s / (xpu_s + pim_s)  # 0.665: xPU (1 − share)·841.7 = PIM share·423.5
    c, p = pim_cost(parse_op(MOE), duplex), placement(parse_op(MOE), duplex)
    assert (p.unit, p.pim_fraction) == ("both", pytest.approx(share))
    assert c.time_s == p.time_s == pytest.approx(xpu_s * pim_s / (xpu_s + pim_s))  # 281.7 us
    assert c.resource_s["memory:hbm"] == pytest.approx((1 - share) * xpu_s)  # the xPU side, memory bound
    assert c.resource_s["compute:bf16"] < c.resource_s["memory:hbm"]
    assert c.resource_s["pim:bf16"] == pytest.approx(share * pim_s)
    assert c.resource_s["memory:pim"] == pytest.approx(q / B_P)  # every byte crosses the internal path
    assert c.bytes_per_level == {"hbm": pytest.approx((1 - share) * q), "pim": pytest.approx(share * q)}
    assert unit_of(c) == "both"


def test_memory_bound_on_the_pim_is_not_split(duplex):
    # g = 4: Op/B ≈ 4 < the PIM ridge 7.95, so the banks bind the PIM alone; splitting cannot beat Q/B_P.
    op = parse_op("attention heads=32 kv_heads=8 q_len=1 kv_len=4096 batch=64")
    p = placement(op, duplex)
    assert (p.unit, p.pim_fraction) == ("pim", 1.0)
    assert p.time_s == pytest.approx(op.bytes / B_P)


def test_vector_ops_and_big_gemms_stay_on_the_xpu(duplex):
    norm, gemm = parse_op("norm rows=64 cols=4096"), parse_op("gemm m=4096 n=4096 k=4096")
    for op in (norm, gemm):
        c, alone = pim_cost(op, duplex), xpu_cost(op, duplex)
        assert unit_of(c) == "xpu" and c.time_s == alone.time_s
        assert c.resource_s["memory:pim"] == pytest.approx(op.bytes / B_P)  # xPU reads cross the internal path too
        assert c.bytes_per_level == {"hbm": op.bytes}
    assert placement(norm, duplex).pim_s is None  # no PIM unit for vector ops
    assert placement(gemm, duplex).pim_s == pytest.approx(2 * 4096**3 / R_P)


def test_energy_charges_each_path(duplex):
    # 0.464 nJ per 32 B over the internal path, 0.891 nJ over the external one, 0.23 pJ per FLOP.
    op = parse_op(GEMV)
    on_pim, on_xpu = pim_cost(op, duplex), xpu_cost(op, duplex)
    assert pim_energy_j(on_pim, duplex.pim) == pytest.approx(op.bytes * 0.464e-9 / 32 + op.flops * 0.23e-12)
    assert pim_energy_j(on_xpu, duplex.pim) == pytest.approx(op.bytes * 0.891e-9 / 32 + op.flops * 0.23e-12)
    no_energy = duplex.pim.model_copy(update={"energy_per_flop": None})
    with pytest.raises(PerfsimError, match="energy_per_flop"):
        pim_energy_j(on_pim, no_energy)


def test_bank_pim_wins_at_op_b_one_and_loses_at_eight(duplex):
    # Bank PIM: 5 × 10.72 TB/s = 53.6 TB/s and 53.6 TFLOP/s (Op/B 1); its crossover 53.6/3.35 = 16.
    bank = load_hardware("duplex-bank-pim")
    assert crossover_intensity(bank, "fp16") == pytest.approx(16.0)
    gemv = parse_op(GEMV)
    assert pim_cost(gemv, bank).time_s == pytest.approx(gemv.bytes / 53.6e12)  # 4x faster than Logic-PIM
    attention = parse_op(GQA)  # Op/B 8.06: bank PIM compute bound, 80.9 us alone vs Logic-PIM's 40.7 us
    assert placement(attention, bank).pim_s == pytest.approx(attention.flops / 53.6e12)
    assert pim_cost(attention, bank).time_s > pim_cost(attention, duplex).time_s


def test_xpu_only_is_the_same_chip_without_pim(duplex):
    gpu = xpu_only(duplex)
    assert gpu.kind == "accelerator" and gpu.main.bandwidth == B_X
    op = parse_op(GQA)
    assert cost(op, gpu).time_s == pytest.approx(xpu_cost(op, duplex).time_s)


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


@pytest.fixture
def dispatched(monkeypatch):
    """cost() sending pim chips to pim_cost, as the integrator wires it (perfsim/cost/__init__.py)."""
    import perfsim.models.step

    def dispatch(op, hardware, cache="cold"):
        chip = getattr(hardware, "device", hardware)
        if chip.kind == "pim" and not isinstance(op, Collective):
            return pim_cost(op, chip, cache)
        return cost(op, hardware, cache)

    monkeypatch.setattr(perfsim.models.step, "cost", dispatch)


def test_mixtral_decode_step_gains_at_most_the_bandwidth_ratio(dispatched):
    # No op can gain more than B_P / B_H100 = 4.51 (memory bound) or (R_X + R_P)/R_X = 1.11 (compute bound).
    frame = decode_sweep("mixtral-8x7b", ["duplex-logic-pim", "h100-sxm"], [64], 384, devices=2, tp=2)
    duplex_row, h100_row = frame.iloc[0], frame.iloc[1]
    assert 2 < duplex_row.tokens_per_s / h100_row.tokens_per_s < B_P / B_H100
    assert duplex_row.energy_per_token_j < h100_row.energy_per_token_j
    placed = {op.label: op.placement.unit for op in placed_ops("mixtral-8x7b", devices=2, tp=2, batch=64,
                                                               context=384)}
    assert (placed["attention"], placed["experts"], placed["qkv"], placed["attn_norm"]) == ("pim", "both", "xpu",
                                                                                             "xpu")


def test_serving_runs_through_the_pim_model(dispatched):
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

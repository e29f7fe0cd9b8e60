"""The CPU cost model (perfsim.cost.cpu): hand checks; whole steps and validation cases with CPUs dispatched to it."""

from __future__ import annotations

import math

import pytest

import perfsim.cost
from perfsim.cost.cpu import cpu_cost, llama_cpp_instructions, tmac_lookup_instructions
from perfsim.cost.cpu_kernels import Q4_0, dequant_kernel
from perfsim.cost.cpu_threads import (
    DEFAULT_FORK_JOIN_S,
    core_bandwidth,
    main_bandwidth,
    parallel_efficiency,
    threads_per_cluster,
)
from perfsim.cost.roofline import roofline
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models.kv_prediction import kv_prediction_ttft, predictor_ops
from perfsim.models.scenario import Scenario, resolve, with_cores
from perfsim.models.step import estimate_step
from perfsim.ops import Gemm, LutGemm, Norm, Softmax
from perfsim.validation.case import load_cases
from perfsim.validation.predict import predict

PI5 = load_hardware("raspberry-pi-5")
ULTRA = load_hardware("m2-ultra-cpu")
SKX = load_hardware("skylake-x-avx512")


@pytest.fixture
def cpu_dispatch(monkeypatch):
    """perfsim.cost.cost() pricing CPUs with cpu_cost, as the integrator wires it."""
    def dispatch(op, device, cache="cold"):
        return cpu_cost(op, device, cache) if device.kind == "cpu" else roofline(op, device, cache)
    monkeypatch.setattr(perfsim.cost, "roofline", dispatch)


def test_per_core_bandwidth_from_littles_law():
    # Skylake-X: 10 line fill buffers x 64 B in flight over 80 ns = 8 GB/s per core
    assert core_bandwidth(SKX) == pytest.approx(10 * 64 / 80e-9)
    # 6 cores draw 48 GB/s, under the 85.33 GB/s of four DDR4-2666 channels
    assert main_bandwidth(SKX, 6) == pytest.approx(48e9)


def test_measured_core_bandwidth_wins_and_the_socket_caps():
    assert core_bandwidth(PI5) == 14.87e9  # tinymembench NEON LDP load, one core
    assert main_bandwidth(PI5, 1) == 14.87e9
    assert main_bandwidth(PI5, 2) == pytest.approx(17.07e9)  # 2 x 14.87 = 29.7 > the LPDDR4X peak


def test_apple_clusters_are_separate_pools():
    # threads fill 4-core P-clusters in order; each cluster draws at most 121 GB/s, one core 102 GB/s
    assert threads_per_cluster(ULTRA, 6) == [4, 2, 0, 0]
    assert main_bandwidth(ULTRA, 1) == pytest.approx(102e9)
    assert main_bandwidth(ULTRA, 4) == pytest.approx(121e9)  # 4 x 102 capped by one cluster
    assert main_bandwidth(ULTRA, 5) == pytest.approx(121e9 + 102e9)  # the fifth thread opens the second cluster
    assert main_bandwidth(ULTRA, 6) == pytest.approx(2 * 121e9)  # 2 x 102 there, capped at 121
    assert main_bandwidth(ULTRA, 16) == pytest.approx(4 * 121e9)  # 484 GB/s of the SoC's 800


def test_parallel_efficiency_from_chunks():
    assert parallel_efficiency(10, 4) == pytest.approx(10 / 12)  # chunks of 3: the last thread does 1
    assert parallel_efficiency(4096, 4) == 1.0
    assert parallel_efficiency(1, 6) == pytest.approx(1 / 6)
    assert parallel_efficiency(7, 1) == 1.0


def test_fork_join_only_on_more_than_one_thread():
    op = Gemm(m=1, n=4096, k=4096, dtype="fp16", weight_dtype="q4_0", weight_shared=True)
    assert cpu_cost(op, with_cores(PI5, 1)).overhead_s == 0.0
    assert cpu_cost(op, with_cores(PI5, 2)).overhead_s == DEFAULT_FORK_JOIN_S


def test_tmac_lookup_count():
    # n·(k/g)·bits = 4096 · 1024 · 4 lookups; 16 per TBL, 4 SIMD instructions per TBL
    op = LutGemm(m=1, n=4096, k=4096, weight_dtype="int4", dtype="fp16")
    assert op.lookups == 4096 * 1024 * 4
    assert tmac_lookup_instructions(op, PI5) == 4096 * 1024 * 4 / 16 * 4
    # one Cortex-A76 core issues 2 SIMD instructions per cycle at its sustained 2.398 GHz (CAL-FMA-PI5):
    # 4,194,304 / 4.796e9 s
    c = cpu_cost(op, with_cores(PI5, 1))
    assert c.resource_s["lut"] == pytest.approx(4_194_304 / 4.796e9)


def test_lookup_bound_throughput_scales_with_one_over_bits():
    # one M2 Ultra P-core: 4 SIMD/cycle at 3.49 GHz; the int4 GEMV's lookups take 0.30 ms, its 8.4 MB of
    # weights 82 us at 102 GB/s: lookup-bound, so halving the bits halves the time
    times = {}
    for dtype in ("int4", "int2", "int1"):
        c = cpu_cost(LutGemm(m=1, n=4096, k=4096, weight_dtype=dtype, dtype="fp16"), with_cores(ULTRA, 1))
        assert c.bound == "lut"
        times[dtype] = c.time_s
    assert times["int4"] / times["int2"] == pytest.approx(2)
    assert times["int2"] / times["int1"] == pytest.approx(2)


def test_llama_cpp_q4_0_dequant_instructions():
    # ggml_vec_dot_q4_0_q8_0 (NEON, dotprod) per 32 weights: AND, USHR, 2 SUB (unpack) + 2 SDOT + MOVI
    # + SCVTF, FMLA, 2 FCVT, FMUL = 12 SIMD instructions, 0.375 per weight
    assert dequant_kernel("q4_0") is Q4_0
    assert Q4_0.per_weight == 12 / 32
    assert Q4_0.unpack / Q4_0.block == 4 / 32
    op = Gemm(m=1, n=4096, k=4096, dtype="fp16", weight_dtype="q4_0", weight_shared=True)
    assert llama_cpp_instructions(op, PI5) == 4096 * 4096 * 12 / 32
    c = cpu_cost(op, with_cores(PI5, 1))
    assert c.resource_s["compute:int8"] == pytest.approx(6_291_456 / 4.796e9)  # 1.31 ms: 2/cycle at 2.398 GHz
    assert c.bound == "compute:int8"  # the weights' 9.4 MB take 0.63 ms at 14.87 GB/s


def test_float_weights_are_not_dequantised():
    assert dequant_kernel("fp16") is None
    assert dequant_kernel("ternary").name == "tq2_0"


def test_tmac_speedup_converges_when_both_are_bandwidth_bound():
    # Pi 5, q4_0 GEMV (0.5625 B/weight). One core: 38 ps/weight of memory at 14.87 GB/s; llama.cpp 0.375
    # instr/weight at 4.8e9/s = 78 ps and T-MAC 0.25 instr/weight = 52 ps, both instruction-bound: speed-up 1.5.
    # Four cores: 17.07 GB/s; both memory-bound (33 ps/weight), so the speed-up is 1.
    def speedup(threads):
        device = with_cores(PI5, threads)
        tmac = cpu_cost(LutGemm(m=1, n=4096, k=4096, weight_dtype="q4_0", dtype="fp16"), device)
        llama = cpu_cost(Gemm(m=1, n=4096, k=4096, dtype="fp16", weight_dtype="q4_0", weight_shared=True), device)
        return llama.time_s / tmac.time_s
    assert speedup(1) == pytest.approx(0.375 / 0.25, rel=0.01)
    assert speedup(4) == pytest.approx(1.0, rel=0.01)


def test_in_cache_softmax_is_bound_by_the_exponential():
    # 4096 fp32 (16 KiB, in L1) on one Skylake-X core: 4096/16 vectors x 25 instructions (MAX; SUB, exp, ADD;
    # SUB, exp, MUL with a 10-instruction exp) at 2 per cycle and 4.5 GHz x 0.75 (the spec has no sustained clock:
    # the default all-core ratio) = 6.75e9 instructions/s: 948 ns
    c = cpu_cost(Softmax(rows=1, cols=4096, variant="three_pass_recompute"), with_cores(SKX, 1), "warm")
    assert c.bound == "compute:fp32"
    assert c.time_s == pytest.approx(4096 / 16 * 25 / 6.75e9)


@pytest.mark.parametrize("write_allocate, ratio", [(True, 5 / 4), (False, 4 / 3)])
def test_out_of_cache_softmax_speedup_follows_the_passes(write_allocate, ratio):
    # 64 MiB out of cache, one core at 8 GB/s: memory-bound. Three-pass recompute moves x 3 reads + y 1 write
    # (+1 write-allocate read), two-pass 2 + 1 (+1)
    def t(variant):
        op = Softmax(rows=16, cols=2**20, variant=variant, write_allocate=write_allocate)
        return cpu_cost(op, with_cores(SKX, 1)).time_s
    assert t("three_pass_recompute") / t("two_pass") == pytest.approx(ratio)


def test_cpu_cost_refuses_other_kinds():
    with pytest.raises(PerfsimError, match="prices CPUs"):
        cpu_cost(Gemm(m=1, n=8, k=8), load_hardware("h100-sxm"))


def test_cores_scale_the_steps_threads(cpu_dispatch):
    # BitNet decode on a Pi 5 is weight-bandwidth-bound: 1 thread draws 9.1 GB/s, 2 threads 17.07 GB/s, so 2
    # threads are faster by at most 17.07 / 9.1 = 1.88 (less where the fork/join and lookups show)
    def tps(cores):
        s = Scenario(model="bitnet-b1.58-3b", hardware="raspberry-pi-5", cores=cores, batch=1, context=128,
                     lut_gemm=True, activation_dtype="fp16")
        return estimate_step(s).summary()["tokens_per_s"]
    assert 1.5 < tps(2) / tps(1) <= 17.07 / 9.1


def test_a_norm_and_a_step_do_not_speed_up_with_rows_on_more_threads():
    # A 768-wide bf16 LayerNorm on the 16-core Xeon 6226R: one row on one thread reads x (1536 B), its gain and
    # bias (2 × 1536 B) and writes y (1536 B): 6144 B at one core's 10 × 64 B / 90 ns = 7.11 GB/s. Two rows run
    # on two threads: each streams its own x and y and all of the gain and bias, 6144 B again at its 7.11 GB/s,
    # so the memory seconds are equal (the chip moves the gain once: 9216 B). Splitting the gain between the two
    # threads had priced 9216 B at 14.2 GB/s, 25 % less: a BERT prefill of 1 token got faster at batch 2.
    xeon = load_hardware("xeon-6226r")
    one, two = (cpu_cost(Norm(rows=rows, cols=768, norm="layernorm"), xeon) for rows in (1, 2))
    assert one.resource_s["memory:ddr4"] == pytest.approx(6144 / (10 * 64 / 90e-9), rel=1e-12)
    assert two.resource_s["memory:ddr4"] == pytest.approx(one.resource_s["memory:ddr4"], rel=1e-12)
    assert two.bytes_per_level == {"ddr4": 9216}
    assert two.time_s >= one.time_s
    steps = [estimate_step(Scenario(model="bert-base", hardware="xeon-6226r", phase="prefill", prompt_len=1,
                                    batch=batch)).step_s for batch in (1, 2)]
    assert steps[1] >= steps[0]


CPU_CASES = ("TMAC-01", "TMAC-05", "TMAC-05-1t", "TMAC-06", "SMX-01", "KVP-01", "KVP-02")


@pytest.mark.parametrize("case_id", CPU_CASES)
def test_cpu_cases_predict_with_the_cpu_model(cpu_dispatch, case_id):
    case = next(c for c in load_cases() if c.id == case_id)
    p = predict(case)
    assert math.isfinite(p.value) and p.value > 0
    assert p.bound.split(":")[0] in ("lut", "memory", "compute")


def test_kv_prediction_parts_add_up(cpu_dispatch):
    base = Scenario(model="openelm-3b", hardware="m2-pro-cpu", phase="prefill", batch=1, prompt_len=256,
                    weight_dtype="fp32", activation_dtype="fp32")
    aux = base.model_copy(update={"model": "openelm-450m"})
    ops = predictor_ops(resolve(base), resolve(aux))
    assert len(ops) == 2 * 36  # a K and a V map per base layer
    # base layer 0 (3 KV heads of 128) reads auxiliary layer 0 (3 KV heads of 64); 256 prompt tokens
    assert (ops[0].m, ops[0].k, ops[0].n) == (256, 3 * 64, 3 * 128)
    r = kv_prediction_ttft(base, aux)
    assert r.predicted_s == pytest.approx(r.auxiliary_s + r.predictor_s + r.first_token_s)
    assert r.predicted_s < r.base_s  # a 450M prefill is cheaper than a 3B one


def test_kv_prediction_needs_matching_prefills():
    base = Scenario(model="openelm-3b", hardware="m2-pro-cpu", phase="prefill", prompt_len=256)
    with pytest.raises(PerfsimError, match="must share"):
        kv_prediction_ttft(base, base.model_copy(update={"model": "openelm-450m", "prompt_len": 128}))
    with pytest.raises(PerfsimError, match="must be a prefill"):
        kv_prediction_ttft(base, base.model_copy(update={"phase": "decode"}))


def test_a_unit_efficiency_on_the_simd_unit_scales_the_instruction_counted_kernels():
    # softmax is priced in SIMD instructions at the fp32 vector unit's issue rate: xeon-6226r has no sustained
    # clock, so it issues at the default 0.75 x peak; a measured unit_efficiency of 0.5 on its avx512 unit replaces
    # that default (0.5 x peak), so its compute seconds grow 0.75 / 0.5 = 1.5 x, exactly as a chip-wide
    # compute_efficiency of 0.5 does
    from perfsim.hardware.common import Calibrated
    from perfsim.ops import Softmax

    xeon = load_hardware("xeon-6226r")
    half = Calibrated[float](value=0.5, source="test")
    own, wide = (xeon.model_copy(update={"calibration": xeon.calibration.model_copy(update=field)})
                 for field in ({"unit_efficiency": {"avx512": half}}, {"compute_efficiency": half}))
    op = Softmax(rows=4096, cols=4096, dtype="fp32")
    base = cpu_cost(op, xeon).resource_s["compute:fp32"]
    assert cpu_cost(op, own).resource_s["compute:fp32"] == pytest.approx(1.5 * base)
    assert cpu_cost(op, wide).resource_s["compute:fp32"] == pytest.approx(1.5 * base)


def test_moe_experts_each_run_on_every_thread_so_more_experts_take_longer():
    # llama.cpp's mul_mat_id (and PyTorch's loop over experts) splits each expert's output rows over all threads:
    # a ViT-sized expert (ffn 3072) gives 3072 work items, not one per expert. 16 tokens top-2 touch every expert,
    # so 2 → 4 → 8 experts read 2× then 4× the weights (2 · 768 · 3072 · 2 B each) on the same 16 threads
    from perfsim.cost.cpu import work_items
    from perfsim.ops import MoE

    xeon = load_hardware("xeon-6226r")
    ops = [MoE(tokens=16, hidden=768, expert_ffn=3072, experts=e, top_k=2, gated=False) for e in (2, 4, 8)]
    assert [work_items(op) for op in ops] == [3072, 3072, 3072]
    times = [cpu_cost(op, xeon).time_s for op in ops]
    assert times[0] < times[1] < times[2]
    assert times[1] / times[0] > 1.9 and times[2] / times[1] > 1.9  # weight-bound: nearly twice the bytes each


# --- sustained all-core clock ---


def test_an_uncalibrated_cpu_runs_at_the_default_all_core_clock_and_says_so(cli):
    # xeon-8380 gives no calibration.sustained_clock: 40 cores x 64 fp32 FLOP/cycle (2 AVX-512 FMA x 16 lanes x 2)
    # x 3.4 GHz peak x DEFAULT_CPU_CLOCK_RATIO 0.75 = 6.528 TFLOP/s. gemm 512 x 4096 x 4096: 2 x 512 x 4096^2 =
    # 17.18 GFLOP, its 4096 columns over 40 threads in chunks of ceil(4096/40) = 103, parallel efficiency
    # 4096 / (103 x 40); compute-bound (80 MiB at 204.8 GB/s is 0.41 ms)
    from perfsim import api
    from perfsim.cost.derating import uncalibrated_fields

    xeon = load_hardware("xeon-8380")
    c = cpu_cost(Gemm(m=512, n=4096, k=4096, dtype="fp32"), xeon)
    assert c.bound == "compute:fp32"
    assert c.resource_s["compute:fp32"] == pytest.approx(2 * 512 * 4096**2 / (40 * 64 * 3.4e9 * 0.75)
                                                         / (4096 / (103 * 40)))
    assert not c.calibrated
    assert uncalibrated_fields(xeon) == ["sustained_clock"]
    line = ("xeon-8380 is uncalibrated (no calibration.sustained_clock); default derating: all-core clock 0.75 × "
            "peak")
    assert api.notes("xeon-8380") == [line]
    assert api.notes("host-8380x2-a40") == [line]  # the host CPU of offloaded serving is priced so too
    result = cli("estimate", "--hardware", "xeon-8380", "--op", "gemm m=512 n=4096 k=4096 dtype=fp32")
    assert result.err == f"perfsim: warning: {line}\n"  # once


def test_a_cpu_with_a_sustained_clock_runs_at_it_and_is_calibrated(cli):
    # m2-pro-cpu's sustained_clock 2.99 GHz (cpufp, 8 P-cores of an M2 Max): 8 cores x 32 fp32 FLOP/cycle
    # (4 NEON pipes x 4 lanes x 2) x 2.99 GHz = 765.44 GFLOP/s; the 4096-cube GEMM splits evenly over 8 threads
    m2 = load_hardware("m2-pro-cpu")
    c = cpu_cost(Gemm(m=4096, n=4096, k=4096, dtype="fp32"), m2)
    assert c.resource_s["compute:fp32"] == pytest.approx(2 * 4096**3 / (8 * 32 * 2.99e9))
    assert c.calibrated
    result = cli("estimate", "--hardware", "m2-pro-cpu", "--op", "gemm m=4096 n=4096 k=4096 dtype=fp32")
    assert result.err == ""
    # the same spec without its sustained clock falls back to 0.75 x 3.49 GHz and says so
    bare = m2.model_copy(update={"calibration": m2.calibration.model_copy(update={"sustained_clock": None})})
    c = cpu_cost(Gemm(m=4096, n=4096, k=4096, dtype="fp32"), bare)
    assert c.resource_s["compute:fp32"] == pytest.approx(2 * 4096**3 / (8 * 32 * 3.49e9 * 0.75))
    assert not c.calibrated

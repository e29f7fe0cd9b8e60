"""The cost model against arithmetic done by hand (written out in each test)."""

import json

import pytest

from perfsim.cost import cost
from perfsim.cost.derating import DEFAULT_LAUNCH_S, DEFAULT_MEMORY_EFFICIENCY
from perfsim.cost.roofline import compute_rate, promotions
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op

H100 = load_hardware("h100-sxm")
HBM_EFF = H100.calibration.memory_efficiency["hbm"].value
H100_EFF = H100.calibration.compute_efficiency.value  # 0.7009, CAL-GEMM-H100


def test_square_gemm_is_compute_bound_below_datasheet_peak(cli):
    result = json.loads(cli("estimate", "--hardware", "h100-sxm", "--op",
                            "gemm m=4096 n=4096 k=4096 dtype=bf16", "--format", "json").out)
    floor = 2 * 4096**3 / 989.4e12  # 138.9 µs at the dense bf16 peak
    assert floor <= result["time_s"] <= 3 * floor
    assert result["bound"] == "compute:bf16"
    assert result["flops"] == 2 * 4096**3
    # HBM: A, B read once, C written once, 2 bytes each. Panel re-reads (A and B, 32 MiB each, fit the 50 MiB L2):
    # 512 tiles of 128×256 in 4 waves of 132; a wave covers a 15 × 9 block of the 32 × 16 tile grid, so A is read
    # 4·15/32 = 1.875 times and B 4·9/16 = 2.25 times: 0.875 + 1.25 extra reads of 4096² · 2 bytes from L2
    tensor = 4096 * 4096 * 2
    assert result["bytes_per_level"] == {"hbm": 3 * tensor, "l2": (0.875 + 1.25) * tensor}
    assert result["intensity_flop_per_byte"] == pytest.approx(2 * 4096**3 / ((3 + 2.125) * tensor))


def test_gemv_is_bound_by_hbm():
    c = cost(parse_op("gemm m=1 n=4096 k=4096 dtype=bf16"), H100)
    moved = (4096 + 4096 * 4096 + 4096) * 2  # x, W, y
    assert c.bytes == moved
    assert c.bound == "memory:hbm"
    # the GEMV kernel streams them once over every SM; the calibrated 2.43 µs launch (CAL-LAUNCH-H100) adds
    assert c.time_s == pytest.approx(moved / (3.35e12 * HBM_EFF) + 2.43e-6)


def test_warm_cache_serves_operands_that_fit():
    op = parse_op("gemm m=1 n=1024 k=1024 dtype=bf16")  # W = 2 MiB fits the 50 MiB L2
    cold, warm = cost(op, H100, "cold"), cost(op, H100, "warm")
    assert cold.bytes_per_level == {"hbm": (1024 + 1024 * 1024 + 1024) * 2}
    assert warm.bytes_per_level == {"l2": (1024 + 1024 * 1024 + 1024) * 2}
    l2 = H100.level("l2")  # no L2 calibration: the default 0.8 of its datasheet bandwidth
    assert warm.memory_s["l2"] == pytest.approx(warm.bytes / (l2.bandwidth * DEFAULT_MEMORY_EFFICIENCY))
    assert warm.time_s < cold.time_s


def test_gqa_decode_intensity_is_group_size():
    # DX-04: 4·h·L·d FLOP over 2·kv·L·d·2 bytes of K and V → h/kv = g FLOP/byte (+ small softmax and q/o terms)
    op = parse_op("attention heads=32 kv_heads=4 head_dim=128 q_len=1 kv_len=4096 dtype=fp16")
    matmul_intensity = op.matmul_flops / (2 * 4 * 4096 * 128 * 2)
    assert matmul_intensity == 8
    assert op.intensity == pytest.approx(8, rel=0.02)


def test_expert_ffn_intensity_is_tokens():
    # DX-03: n tokens through one gated expert: 2·n·3·h·f FLOP over 3·h·f·2 bytes of fp16 weights = n FLOP/byte
    op = parse_op("moe tokens=16 hidden=4096 expert_ffn=14336 experts=1 top_k=1 dtype=fp16")
    weight_bytes = 3 * 4096 * 14336 * 2
    assert op.routed_flops / weight_bytes == 16
    assert op.intensity == pytest.approx(16, rel=0.01)


def test_moe_weight_traffic_counts_experts_touched():
    op = parse_op("moe tokens=1 hidden=64 expert_ffn=32 experts=8 top_k=2")
    assert op.experts_touched == pytest.approx(2)  # one token touches exactly its top-2
    grouped = parse_op("moe tokens=1000 hidden=64 expert_ffn=32 experts=64 top_k=8 groups=8")
    assert grouped.experts_touched == pytest.approx(64, rel=1e-6)  # 1000 tokens touch every expert


def test_softmax_bytes_per_variant():
    # 1024 × 1024 fp32 = 4 MiB; reads and writes of x (input) and y (output), write-allocate adds a read per write
    size = 1024 * 1024 * 4
    expected = {("three_pass_recompute", True): 5, ("three_pass_recompute", False): 4,
                ("three_pass_reload", True): 7, ("three_pass_reload", False): 5,
                ("two_pass", True): 4, ("two_pass", False): 3,
                ("single_pass", True): 3, ("single_pass", False): 2}
    for (variant, allocate), passes in expected.items():
        op = parse_op(f"softmax rows=1024 cols=1024 variant={variant} write_allocate={str(allocate).lower()}")
        assert op.bytes == passes * size, variant


def test_int4_on_h100_runs_on_int8_units():
    c = cost(parse_op("gemm m=4096 n=4096 k=4096 dtype=int4"), H100)
    assert c.bound == "compute:int8"
    # int8 tiles 128×256×128: 32·16 = 512 tiles, 4 waves on 132 SMs, each tile 2·128·256·4096 FLOP at one SM's
    # 1978.9 TOP/s × calibrated 0.7009 / 132
    assert c.compute_s == pytest.approx(4 * 2 * 128 * 256 * 4096 / (1978.9e12 * H100_EFF / 132))


def test_vector_work_on_mi300x_promotes_on_the_vector_units():
    # MI300X's vector ALUs run fp32 (163.4 TFLOP/s) and fp64, no bf16: a bf16 softmax or norm runs in fp32
    # there, not on the matrix cores' bf16 (1307.4 TFLOP/s, 8× faster). Both derate by the same clock scale.
    mi300x = load_hardware("mi300x")
    cal = mi300x.calibration
    scale = cal.sustained_clock.value / mi300x.clock.peak * cal.compute_efficiency.value
    assert compute_rate(mi300x, "vector", "bf16") == ("fp32", pytest.approx(163.4e12 * scale))
    assert compute_rate(mi300x, "matrix", "bf16") == ("bf16", pytest.approx(1307.4e12 * scale))
    softmax = cost(parse_op("softmax rows=4096 cols=4096 dtype=bf16 variant=single_pass"), mi300x)
    assert softmax.resource_s["compute:fp32"] == pytest.approx(5 * 4096 * 4096 / (163.4e12 * scale))  # 5 FLOP/elem
    norm = cost(parse_op("norm rows=4096 cols=8192 dtype=bf16"), mi300x)
    assert norm.resource_s["compute:fp32"] == pytest.approx(4 * 4096 * 8192 / (163.4e12 * scale))  # rmsnorm: 4
    # fused attention (FlashAttention kernel, default 128 × 128 tiles): 8 heads × 8 query tiles = 64 units, one wave
    # on 304 CUs; the longest unit visits all 8 KV tiles. Per tile QKᵀ and PV (4·128³ FLOP) on one CU's matrix
    # cores in bf16, then its softmax (4 ops + 1 exp per score; no special-function units in the spec) in fp32
    # on one CU's vector ALUs (163.4 TFLOP/s / 2 FLOP per element op), one after the other
    attention = cost(parse_op("attention heads=8 head_dim=128 q_len=1024 kv_len=1024 causal=false"), mi300x)
    tile_s = 4 * 128**3 / (1307.4e12 * scale / 304) + 128 * 128 * 5 / (163.4e12 * scale / 2 / 304)
    assert attention.resource_s["compute:bf16"] == pytest.approx(8 * tile_s)


def test_vector_work_borrows_matrix_units_only_when_no_vector_unit_runs_it():
    # the ZCU102 design has one int16 MAC array (matrix) and no vector unit: vector work must borrow it
    fpga = load_hardware("zcu102-edge-moe")
    assert compute_rate(fpga, "vector", "int8") == ("int16", pytest.approx(512 * 300e6))


def test_integers_widen_through_every_int_width_before_floats():
    assert promotions("int4") == ["int4", "int8", "int16", "int32", "fp16", "bf16", "fp32", "fp64"]
    assert promotions("int16")[:3] == ["int16", "int32", "fp32"]  # fp16's 11-bit significand cannot hold int16
    assert promotions("bf16") == ["bf16", "fp32", "fp64"]


def test_int8_gemm_on_the_fpga_runs_on_its_int16_mac_array():
    # an error before (no int8 unit); the int16 16×16 array in Edge-MoE's row-vector dataflow takes
    # M·⌈K/16⌉·⌈N/16⌉ = 64·4·4 cycles + ⌈log2 16⌉ + 2 = 6 of fill: 1030 cycles at 300 MHz = 3.433 µs
    c = cost(parse_op("gemm m=64 n=64 k=64 dtype=int8"), load_hardware("zcu102-edge-moe"))
    assert c.resource_s["compute:int16"] == pytest.approx((64 * 4 * 4 + 6) / 300e6)


def test_sustained_clock_and_efficiency_derate_mi300x():
    mi300x = load_hardware("mi300x")
    cal = mi300x.calibration
    c = cost(parse_op("gemm m=8192 n=8192 k=8192 dtype=bf16"), mi300x)
    rate = 1307.4e12 * cal.sustained_clock.value / mi300x.clock.peak * cal.compute_efficiency.value
    # 256×256 tiles: 32·32 = 1024 tiles = 3.4 waves on 304 CUs; K split 2 ways: 2048 units of 64 K-steps (4096
    # deep) in 7 waves (3.5 unsplit-wave times, not 4), so the kernel splits: 7 × 2·256·256·4096 FLOP per CU
    assert c.compute_s == pytest.approx(7 * 2 * 256 * 256 * 4096 / (rate / 304))
    # AMD-01 is the calibration point: 708 TFLOP/s sustained
    assert rate == pytest.approx(708e12, rel=0.01)


def test_op_overhead_adds_to_time(tmp_path):
    text = (load_hardware.__globals__["SPEC_DIR"] / "h100-sxm.yaml").read_text()
    path = tmp_path / "h100-sxm.yaml"
    path.write_text(text[: text.index("  op_overhead:\n")])  # the launch calibration is the spec's last field
    op = parse_op("gemm m=1 n=64 k=64")
    measured, default = cost(op, H100), cost(op, load_hardware(str(path)))
    # the calibrated 2.43 µs launch replaces the 5 µs default; with it the spec lacks no calibration
    assert measured.time_s == pytest.approx(default.time_s - DEFAULT_LAUNCH_S + 2.43e-6)
    assert measured.bound == default.bound == "overhead"
    assert measured.calibrated and not default.calibrated


def test_lut_gemm_on_a_cpu_is_bound_by_lookups_or_memory():
    pi5 = load_hardware("raspberry-pi-5")
    op = parse_op("lut_gemm m=1 n=4096 k=4096 weight_dtype=int2 group_size=4")
    c = cost(op, pi5)
    lookups = 1 * 4096 * (4096 // 4) * 2  # m·n·(k/g)·bits
    assert op.lookups == lookups
    # T-MAC's NEON kernel: 4 SIMD instructions per 16-entry TBL, on the A76's 2 SIMD pipes per core, at the
    # sustained 2.398 GHz all-core clock (CAL-FMA-PI5)
    issue = pi5.lut.simd_issue_per_cycle_per_core * pi5.cores * 2.398e9
    assert c.resource_s["lut"] == pytest.approx(lookups / 16 * 4 / issue)
    assert c.bound in ("lut", f"memory:{pi5.main.name}")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--hardware", "h100-sxm", "--op", "all_reduce bytes=1024"], "needs a system"),
        (["--hardware", "h100-sxm", "--op", "gemm m=0 n=1 k=1"], "m: Input should be greater than 0"),
        (["--hardware", "h100-sxm", "--op", "gemm m=1 n=1 k=1 dtype=fp12"], "unknown dtype"),
        (["--hardware", "h100-sxm", "--op", "gemm m=1 n=1 k=1 nn=2"], "did you mean 'n'"),
        (["--hardware", "h100-sxm", "--op", "matmul m=1"], "unknown kind 'matmul'"),
        (["--hardware", "h100-sxm", "--op", "attention heads=6 kv_heads=4 q_len=1 kv_len=8"], "multiple of kv_heads"),
        (["--hardware", "mi300x-node", "--op", "all_reduce bytes=1024 group=9"], "exceeds the 8 chips"),
        (["--hardware", "stm32f746", "--op", "gemm m=8 n=8 k=8 dtype=fp8"], None),
    ],
)
def test_bad_ops_exit_2_with_one_line(cli, argv, needle):
    result = cli("estimate", *argv)
    if needle is None:  # fp8 on a Cortex-M7 falls back to a wider dtype it has
        assert result.code == 0
        return
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_core_bandwidth_caps_what_few_cores_can_stream():
    from perfsim.cost.roofline import level_bandwidth
    from perfsim.models.scenario import with_cores

    pi5 = load_hardware("raspberry-pi-5")
    dram = pi5.main
    per_core = pi5.calibration.core_bandwidth[dram.name].value  # tinymembench, one thread: 9.1 GB/s
    assert level_bandwidth(with_cores(pi5, 1), dram) == per_core
    assert level_bandwidth(pi5, dram) == min(dram.bandwidth, 4 * per_core) == 17.07e9


def test_cores_flag_only_for_cpus_and_mcus(cli):
    result = cli("estimate", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--cores", "2")
    assert result.code == 2 and "cores applies to CPUs and MCUs" in result.err


def test_cost_is_memoised_per_hardware_object_and_cache_state():
    h100 = load_hardware("h100-sxm")
    gemm = parse_op("gemm m=512 n=512 k=512 dtype=bf16")
    first = cost(gemm, h100)
    assert cost(parse_op("gemm m=512 n=512 k=512 dtype=bf16"), h100) is first  # an equal op hits the memo
    assert cost(gemm, h100, "warm") is not first  # the cache state is part of the key
    other = load_hardware("a100-sxm-80gb")
    assert cost(gemm, other).compute_s > first.compute_s  # another chip is priced on its own (A100 is slower)

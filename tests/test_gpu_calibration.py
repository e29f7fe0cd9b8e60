"""GPU calibrations through cost(): issue 14's acceptance shapes, and results that say when a default stood in."""

import pytest

from perfsim.cost import cost
from perfsim.cost.derating import DEFAULT_LAUNCH_S, uncalibrated_fields
from perfsim.hardware import load_hardware
from perfsim.ops import Elementwise, Gemm

H100 = load_hardware("h100-sxm")
A100 = load_hardware("a100-sxm-80gb")


def test_4096_cubed_bf16_gemm_on_h100_is_below_90_percent_of_peak():
    # 512 tiles of 128×256 in ⌈512/132⌉ = 4 waves; each SM does 4 tiles of 2·128·256·4096 FLOP at
    # 989.4 TFLOP/s × 0.7009 / 132 = 5.2536 TFLOP/s: 204.38 µs, plus the calibrated 2.43 µs launch = 206.81 µs,
    # so 2·4096³ / 206.81 µs = 664.6 TFLOP/s = 67 % of the 989.4 datasheet peak
    c = cost(Gemm(m=4096, n=4096, k=4096, dtype="bf16"), H100)
    expected_s = 4 * 2 * 128 * 256 * 4096 / (989.4e12 * 0.7009 / 132) + 2.43e-6
    assert c.time_s == pytest.approx(expected_s, rel=1e-9)
    assert c.flops / c.time_s < 0.9 * 989.4e12
    assert c.flops / c.time_s == pytest.approx(664.6e12, rel=1e-3)


def test_64_cubed_gemm_costs_at_least_one_launch():
    c = cost(Gemm(m=64, n=64, k=64, dtype="bf16"), H100)
    assert c.time_s >= H100.calibration.op_overhead.value == 2.43e-6 and c.bound == "overhead"


def test_calibration_points_are_reproduced_by_the_tile_model():
    # CAL-GEMM-H100: 16384³ fp8, 8192 tiles of 128×256, K (128 steps of 128) split 2 ways: 16384 units in
    # ⌈16384/132⌉ = 125 waves of 64 steps; compute = 125 · 2·128·256·8192 FLOP / (1978.9 TFLOP/s · 0.7009 / 132)
    h100 = cost(Gemm(m=16384, n=16384, k=16384, dtype="fp8_e4m3"), H100)
    assert h100.resource_s["compute:fp8_e4m3"] == pytest.approx(
        125 * 2 * 128 * 256 * 8192 / (1978.9e12 * 0.7009 / 132), rel=1e-9)
    assert h100.flops / h100.time_s == pytest.approx(1377.3e12, rel=2e-3)  # the published point, launch included
    # CAL-GEMM-A100: 16384³ fp16, 8192 tiles of 256×128 in ⌈8192/108⌉ = 76 waves of 256 steps of 64
    a100 = cost(Gemm(m=16384, n=16384, k=16384, dtype="fp16"), A100)
    assert a100.resource_s["compute:fp16"] == pytest.approx(
        76 * 2 * 256 * 128 * 16384 / (312e12 * 0.8237 / 108), rel=1e-9)
    assert a100.flops / a100.time_s == pytest.approx(256.5e12, rel=2e-3)


def test_results_say_whether_a_default_derating_stood_in():
    # H100, A100, M2, M3 Max and MI300X carry every calibration (GEMM, stream copy, launch: CAL-GEMM/AMD-01,
    # CAL-HBM/CAL-MEM, CAL-LAUNCH; the H100's and M2's launches measured on their siblings H200 and M2 Pro); the M1
    # Pro has no cited launch microbenchmark, so it lacks op_overhead alone, as does the H100 stripped of its figure,
    # and their costs carry calibrated = False
    assert uncalibrated_fields(H100) == uncalibrated_fields(A100) == uncalibrated_fields(load_hardware("m2-gpu")) == []
    assert uncalibrated_fields(load_hardware("m3-max-gpu")) == uncalibrated_fields(load_hardware("mi300x")) == []
    assert uncalibrated_fields(load_hardware("m1-pro-gpu")) == ["op_overhead"]
    bare = H100.model_copy(update={"calibration": H100.calibration.model_copy(update={"op_overhead": None})})
    assert uncalibrated_fields(bare) == ["op_overhead"]
    op = Gemm(m=256, n=256, k=256, dtype="bf16")
    assert cost(op, H100).as_dict()["calibrated"] is True
    assert cost(op, bare).as_dict()["calibrated"] is False
    assert cost(op, bare).overhead_s == DEFAULT_LAUNCH_S
    assert cost(op, load_hardware("raspberry-pi-5")).calibrated  # other kinds say nothing about GPU deratings


def test_m2_launch_is_the_m2_pro_back_to_back_figure():
    # CAL-LAUNCH-M2 / CAL-LAUNCH-M2ULTRA: ferrox #149 on an M2 Pro, (16.32 - 12.02) ms / 832 extra dispatches, stated
    # as 5.16 µs per dispatch, replaces the 5 µs default on both M2-generation GPUs. The case's 256-element fp32 copy
    # moves 2 · 1 KiB = 2048 B: at 100 GB/s × 0.9 (M2) 22.76 ns, at 800 GB/s × 0.795 (M2 Ultra) 3.22 ns
    op = Elementwise(elements=256, inputs=1, flops_per_element=0, dtype="fp32")
    for name, stream in (("m2-gpu", 100e9 * 0.9), ("m2-ultra-gpu", 800e9 * 0.795)):
        c = cost(op, load_hardware(name))
        assert c.overhead_s == pytest.approx(5.16e-6, rel=1e-12) and c.bound == "overhead" and c.calibrated
        assert c.time_s == pytest.approx(5.16e-6 + 2048 / stream, rel=1e-9)


def test_mi300x_launch_is_the_cited_back_to_back_figure():
    # CAL-LAUNCH-MI300X: 1.88 µs per empty kernel on one stream (PETSc ex1k on Frontier's MI250X) replaces the 5 µs
    # default. The case's 256-element fp32 copy moves 2 · 1 KiB = 2048 B at 5.3 TB/s × 0.7717 = 4.090 TB/s:
    # 0.5007 ns, so the op is launch-bound at 1.88 µs + 0.5007 ns
    mi300x = load_hardware("mi300x")
    c = cost(Elementwise(elements=256, inputs=1, flops_per_element=0, dtype="fp32"), mi300x)
    assert c.overhead_s == pytest.approx(1.88e-6, rel=1e-12) and c.bound == "overhead" and c.calibrated
    assert c.time_s == pytest.approx(1.88e-6 + 2048 / (5.3e12 * 0.7717), rel=1e-9)


def test_a_unit_efficiency_calibrates_its_own_unit_and_leaves_the_others_at_the_default():
    # rtx-a6000 calibrates only its CUDA cores (unit_efficiency.cuda 0.6178, an fp32 cuBLAS SGEMM): fp32 work
    # runs at 38.7 TFLOP/s × 0.6178 = 23.909 TFLOP/s, tensor-core bf16 at the default 154.8 × 0.7 = 108.36 TFLOP/s
    from perfsim.cost.derating import rates

    a6000 = load_hardware("rtx-a6000")
    chip = rates(a6000)
    assert chip.compute("vector", "fp32") == ("fp32", pytest.approx(38.7e12 * 0.6178))
    assert chip.compute("matrix", "bf16") == ("bf16", pytest.approx(154.8e12 * 0.7))
    assert uncalibrated_fields(a6000) == ["unit_efficiency.tensor", "memory_efficiency.gddr6"]  # CAL-LAUNCH-A6000
    # a chip-wide compute_efficiency instead would scale both units
    wide = a6000.model_copy(update={"calibration": a6000.calibration.model_copy(update={
        "unit_efficiency": {}, "compute_efficiency": a6000.calibration.unit_efficiency["cuda"]})})
    assert rates(wide).compute("matrix", "bf16")[1] == pytest.approx(154.8e12 * 0.6178)


def test_each_engine_of_an_op_runs_at_its_own_units_derating():
    # the derated roofline of fp16 attention on rtx-a6000 (the accelerator model prices attention by its kernels;
    # the roofline stands for any op with matrix and vector work): its QKᵀ and PV matmuls run on the tensor cores at
    # the default 0.7 of 154.8 TFLOP/s, its softmax on the CUDA cores at their calibrated 0.6178 of 38.7 TFLOP/s;
    # both are fp16, one `compute:fp16` resource holding the sum
    from perfsim.cost.accelerator import derated_roofline
    from perfsim.ops import Attention

    op = Attention(heads=32, q_len=4096, kv_len=4096, head_dim=128, fused=False, dtype="fp16")
    c = derated_roofline(op, load_hardware("rtx-a6000"))
    expected = op.matmul_flops / (154.8e12 * 0.7) + op.softmax_flops / (38.7e12 * 0.6178)
    assert c.resource_s["compute:fp16"] == pytest.approx(expected)

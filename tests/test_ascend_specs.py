"""The Atlas 800I A2's NPU: the 910B4-1 spec's peaks follow from its CANN platform config by hand; the 310P's
LPDDR4X and the 910B4-1's cube calibrations reproduce their microbenchmarks (CAL-MEM-310P, CAL-GEMM-910B4-1)."""

from pytest import approx

from perfsim.cost import cost
from perfsim.cost.derating import DEFAULT_LAUNCH_S
from perfsim.hardware import System, load_hardware
from perfsim.ops import parse_op
from perfsim.units import Span


def test_the_800i_a2_is_eight_910b4_1_npus():
    server = load_hardware("atlas-800i-a2")
    assert isinstance(server, System) and server.chips == 8
    assert server.device.name == "ascend-910b4-1"
    assert load_hardware("atlas-800i-a2-x4").device.name == "ascend-910b4-1"


def test_910b4_1_peaks_follow_from_its_platform_config():
    chip = load_hardware("ascend-910b4-1")
    # Ascend910B4-1.ini: 20 cube cores, cube_freq 1500 MHz, 16x16x16 fp16 MACs and 16x32x16 int8 MACs a cycle:
    # fp16 20 * 4096 * 2 * 1.5e9 = 245.76e12 FLOP/s, int8 20 * 8192 * 2 * 1.5e9 = 491.52e12 OP/s
    assert chip.cores == 20
    assert chip.peak_flops("fp16") == 245.76e12 and chip.peak_flops("bf16") == 245.76e12
    assert chip.peak_flops("int8") == 491.52e12
    # one SKU, not the 910B range: no field is a Span, so validation needs no band for the 800I A2
    hbm = next(m for m in chip.memory if m.name == "hbm")
    assert hbm.capacity == 64 * 2**30 and not isinstance(hbm.bandwidth, Span)
    # l2_size = 176160768 B = 168 MiB; L2 rate 110 B/cycle/core * 20 cores * 1.5 GHz = 3.3 TB/s
    l2 = next(m for m in chip.memory if m.name == "l2")
    assert (l2.capacity, l2.bandwidth) == (176160768, 3.3e12)


def test_310p_gemv_streams_its_weight_at_the_calibrated_lpddr4x_rate():
    chip = load_hardware("ascend-310p")
    assert chip.calibration.memory_efficiency["lpddr4x"].value == round(155 / 204, 2)  # CAL-MEM-310P: 0.76
    op = parse_op("gemm m=1 n=14336 k=4096 dtype=fp16")
    # bytes: weight 14336 * 4096 * 2 = 117,440,512 + vector 4096 * 2 + output 14336 * 2 = 117,477,376, streamed from
    # LPDDR4X at 204e9 * 0.76 = 155.04e9 B/s: 757.7 us, plus the 5 us launch default (no Ascend op_overhead)
    assert op.bytes == 117_477_376
    assert cost(op, chip).time_s == approx(117_477_376 / (204e9 * 0.76) + DEFAULT_LAUNCH_S, rel=1e-3)
    assert load_hardware("atlas-300i-duo").device.calibration.memory_efficiency["lpddr4x"].value == 0.76


def test_910b4_1_compute_efficiency_reproduces_its_matmulv3():
    chip = load_hardware("ascend-910b4-1")
    op = parse_op("gemm m=8192 n=2048 k=7168 dtype=bf16")
    # 2 * 8192 * 2048 * 7168 = 240,518,168,576 FLOP in 1046.6 us; 128 x 256 tiles: 64 * 8 = 512 tiles in ceil(512 / 20)
    # = 26 waves over 20 cores, occupancy 512 / 520; K = 7168 = 112 steps of 64, so no padding
    occupancy = 512 / 520
    efficiency = 240_518_168_576 / 1046.6e-6 / (245.76e12 * occupancy)
    assert chip.calibration.compute_efficiency.value == round(efficiency, 4)  # 0.9497
    expected = 240_518_168_576 / (245.76e12 * 0.9497 * occupancy) + DEFAULT_LAUNCH_S
    assert cost(op, chip).time_s == approx(expected, rel=1e-3)

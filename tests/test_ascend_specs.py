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


NOTE_310P_BF16 = ("ascend-310p has no bf16 matrix peak: bf16 GEMMs run on the vector units at fp32 rate; "
                  "use a dtype its matrix units run (fp16, int8)")


def test_310p_bf16_gemms_fall_to_the_vector_units_and_say_so():
    import perfsim as ps

    # the 310P's cube runs fp16 and int8 only (Ascend310P3.ini Intrinsic_mmad): bf16 widens to fp32, which only the
    # vector units run, 1.92 TFLOP/s × the default derating 0.7 at best (the GEMM kernel model adds its tiling);
    # fp16 stays on the cube
    bf16 = ps.estimate("gemm m=4096 n=4096 k=4096 dtype=bf16", "ascend-310p")
    assert bf16.summary["bound"] == "compute:fp32"
    assert bf16.cost.compute_s >= 2 * 4096**3 / (1.92e12 * 0.7)
    assert bf16.notes[-1] == NOTE_310P_BF16
    fp16 = ps.estimate("gemm m=4096 n=4096 k=4096 dtype=fp16", "ascend-310p")
    assert not any("matrix peak" in note for note in fp16.notes)
    assert not any("matrix peak" in note for note in ps.estimate("gemm m=64 n=64 k=64 dtype=bf16", "h100-sxm").notes)


def test_310p_bf16_step_warns_once_and_an_fp16_step_does_not(cli):
    bf16 = cli("estimate", "--model", "llama-3-8b", "--hardware", "ascend-310p", "--batch", "32")
    assert bf16.code == 0 and bf16.err.count(f"perfsim: warning: {NOTE_310P_BF16}\n") == 1
    fp16 = cli("estimate", "--model", "llama-3-8b", "--hardware", "ascend-310p", "--batch", "32",
               "--weight-dtype", "fp16", "--activation-dtype", "fp16", "--kv-dtype", "fp16")
    assert fp16.code == 0 and "matrix peak" not in fp16.err


def test_a_tile_for_a_dtype_no_matrix_unit_runs_is_refused(cli, tmp_path):
    from perfsim.hardware import SPEC_DIR

    text = (SPEC_DIR / "ascend-310p.yaml").read_text()
    broken = text.replace("    fp16: {m: 128, n: 256, k: 64}\n",
                          "    fp16: {m: 128, n: 256, k: 64}\n    bf16: {m: 128, n: 256, k: 64}\n")
    assert broken != text
    (tmp_path / "ascend-310p.yaml").write_text(broken)
    result = cli("hardware", "show", str(tmp_path / "ascend-310p.yaml"))
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().endswith("ascend-310p.yaml: gemm_tiles.shapes: no matrix unit runs bf16 (they run fp16, "
                                       "int8); a tile is the matrix units' kernel shape")

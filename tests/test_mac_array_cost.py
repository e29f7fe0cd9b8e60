"""The MAC-array model: SCALE-Sim's cycle counts, the other dataflows, traffic, energy and spec errors (issue 25)."""

import pytest

from perfsim.cost import cost
from perfsim.cost.mac_array import mapping
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.mac_array import Array, MacArray, with_array
from perfsim.ops import Conv2d, Gemm, parse_op


@pytest.fixture(scope="module")
def os128():
    return load_hardware("tpe-systolic-os-128")


def _array(dataflow, rows, cols, depth=1, dtype="int8", **more):
    return Array(dataflow=dataflow, rows=rows, cols=cols, depth=depth, dtype=dtype, source="test array", **more)


@pytest.mark.parametrize(("m", "k", "n", "dataflow", "cycles"), [
    # SCALE-Sim v3 on 128 x 128 (issue 25). OS: ⌈256/128⌉·⌈256/128⌉ = 4 folds of 128 + 128 + 256 − 2 = 510;
    # 4 · 510 − 1 = 2039.
    (256, 256, 256, "output_stationary", 2039),
    # OS: 8 · 8 = 64 folds of 128 + 128 + 1024 − 2 = 1278; 64 · 1278 − 1 = 81791.
    (1024, 1024, 1024, "output_stationary", 81791),
    # WS: ⌈1024/128⌉·⌈1024/128⌉ = 64 folds of 2·128 + 128 + 1024 − 2 = 1406; 64 · 1406 − 1 = 89983.
    (1024, 1024, 1024, "weight_stationary", 89983),
])
def test_scale_sim_cycle_counts(m, k, n, dataflow, cycles):
    assert mapping(m, k, n, _array(dataflow, 128, 128), "int8").cycles == cycles


@pytest.mark.parametrize(("dataflow", "cycles"), [
    # M = 200, K = 50, N = 130 fills no fold of a 128 x 128 array; a partial fold costs a full one (SCALE-Sim pads).
    ("output_stationary", 1215),  # ⌈200/128⌉·⌈130/128⌉ = 4 folds × (128 + 128 + 50 − 2 = 304) − 1
    ("weight_stationary", 1163),  # ⌈50/128⌉·⌈130/128⌉ = 2 folds × (256 + 128 + 200 − 2 = 582) − 1
    ("input_stationary", 1023),   # ⌈50/128⌉·⌈200/128⌉ = 2 folds × (256 + 128 + 130 − 2 = 512) − 1
])
def test_odd_shape_pays_for_whole_folds(dataflow, cycles):
    assert mapping(200, 50, 130, _array(dataflow, 128, 128), "int8").cycles == cycles


def test_small_gemm_utilisation():
    # 64³ on 128 x 128 OS: one fold of 128 + 128 + 64 − 2 = 318, minus 1: 317 cycles for 64³ = 262,144 MACs,
    # of 317 · 16,384 = 5,193,728 the array could do: 5.047 %.
    got = mapping(64, 64, 64, _array("output_stationary", 128, 128), "int8")
    assert (got.folds, got.fold_cycles, got.cycles) == (1, 318, 317)
    assert got.utilization == pytest.approx(262144 / 5193728)


@pytest.mark.parametrize(("array", "m", "k", "n", "dtype", "cycles"), [
    # cube 8x8x8: ⌈16/8⌉·⌈16/8⌉·⌈16/8⌉ = 8 products, + log2(8) = 3 adder levels + 1 multiply stage = 12
    (_array("cube", 8, 8, 8), 16, 16, 16, "int8", 12),
    # adder tree, 16 trees of 16: M · ⌈16/16⌉ · ⌈32/16⌉ = 10 · 2 = 20, + log2(16) = 4 + 1 = 25
    (_array("adder_tree", 16, 16, dtype="int16"), 10, 32, 16, "int16", 25),
    # 2-D matrix 1 x 1 with posit(16,1): ⌈2/1⌉·⌈2/1⌉ tiles × K = 3 cycles + 1 = 13
    (_array("matrix_2d", 1, 1, dtype="posit16_1"), 2, 3, 2, "posit16_1", 13),
    # ... with 4 posit(4,1) lanes: K' = ⌈3/4⌉ = 1, so 4 tiles × 1 + 1 = 5
    (_array("matrix_2d", 1, 1, dtype="posit16_1", lanes={"posit4_1": 4}), 2, 3, 2, "posit4_1", 5),
    # bit-serial OS 4 x 4, 1 weight bit per cycle: an int8 MAC takes 8 cycles, so K streams as 8 · 2 = 16:
    # one fold of 4 + 4 + 16 − 2 = 22, minus 1 = 21
    (_array("output_stationary", 4, 4, serial_bits=1), 4, 2, 4, "int8", 21),
])
def test_other_engines(array, m, k, n, dtype, cycles):
    assert mapping(m, k, n, array, dtype).cycles == cycles


def test_conv2d_is_its_im2col_gemm(os128):
    # 16 → 32 channels, 8 x 8, 3 x 3, padding 1: M = 64 pixels, K = 16 · 9 = 144, N = 32:
    # one fold of 128 + 128 + 144 − 2 = 398, minus 1 = 397 cycles.
    c = cost(Conv2d(in_channels=16, out_channels=32, height=8, width=8, kernel=3, padding=1, dtype="int8"), os128)
    assert c.detail["cycles"] == "397"


def test_batches_are_folds(os128):
    # 4 separate 100 x 64 x 64 GEMMs: 4 × (one fold of 128 + 128 + 64 − 2 = 318, minus 1) = 1268;
    # with one shared weight matrix the 400 rows stack: ⌈400/128⌉ = 4 folds × 318 − 1 = 1271
    assert cost(Gemm(m=100, k=64, n=64, batch=4, dtype="int8"), os128).detail["cycles"] == "1268"
    assert cost(Gemm(m=100, k=64, n=64, batch=4, dtype="int8", weight_shared=True), os128).detail["cycles"] == "1271"


def test_traffic_and_time_of_256_cubed(os128):
    c = cost(Gemm(m=256, k=256, n=256, dtype="int8"), os128)
    # buffer reads: A once per column fold (65,536 B · 2), B once per row fold (65,536 B · 2), C written once.
    assert c.bytes_per_level["ifmap_sram"] == 131072
    assert c.bytes_per_level["filter_sram"] == 131072
    assert c.bytes_per_level["ofmap_sram"] == 65536
    # DRAM: all of A (64 KiB) and a 256 x 128 slice of B (32 KiB) fit in half their 6 MiB buffers: each once.
    assert c.bytes_per_level["dram"] == 3 * 65536
    assert c.resource_s["compute:int8"] == pytest.approx(2039 / 181.8e6)
    assert c.time_s == pytest.approx(196608 / 1.818e9)  # DRAM-bound at 10 B per cycle
    assert c.bound == "memory:dram"
    # energy: 2039 cycles × 16,384 PEs × 0.8335 pJ (no per-byte energies in the spec)
    assert c.energy_j == pytest.approx(2039 * 16384 * 0.8335e-12)


def test_an_operand_that_does_not_fit_is_streamed_again(os128):
    data = os128.model_dump(exclude={"compute"})
    data["memory"][0]["capacity"] = 64 * 1024  # ifmap_sram: half is 32 KiB < A's 64 KiB
    small = MacArray.model_validate(data)
    c = cost(Gemm(m=256, k=256, n=256, dtype="int8"), small)
    assert c.bytes_per_level["dram"] == 131072 + 65536 + 65536  # A twice (once per column fold), B and C once


def test_rows_and_cols_are_overridable_fields(os128):
    half = with_array(os128, rows=64)
    assert half.peak_flops("int8") == pytest.approx(2 * 64 * 128 * 181.8e6)
    # 256³ OS on 64 x 128: 4 · 2 = 8 folds of 64 + 128 + 256 − 2 = 446 → 3567
    assert cost(Gemm(m=256, k=256, n=256, dtype="int8"), half).detail["cycles"] == "3567"


def test_narrower_format_runs_in_a_wider_lane_and_unknown_is_an_error(os128):
    assert cost(Gemm(m=128, k=128, n=128, dtype="int4"), os128).bound  # int4 runs on the int8 PEs
    with pytest.raises(PerfsimError, match="computes int8, not posit8_0"):
        cost(Gemm(m=128, k=128, n=128, dtype="posit8_0"), os128)


def test_spec_errors(tmp_path, cli):
    with pytest.raises(ValueError, match="depth 8 is for a cube"):
        _array("output_stationary", 4, 4, depth=8)
    text = (load_hardware.__globals__["SPEC_DIR"] / "tpe-cube-8.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("memory:", "compute:\n  - {name: x, role: matrix, per_cycle: {int8: 2}, cores: 1, "
                                           "source: made up}\nmemory:", 1))
    result = cli("estimate", "--op", "gemm m=8 n=8 k=8 dtype=int8", "--hardware", str(bad))
    assert result.code == 2 and "compute is derived from its array" in result.err


def test_cli_estimate_names_the_dataflow(cli):
    result = cli("estimate", "--op", "gemm m=1024 n=1024 k=1024 dtype=int8", "--hardware", "tpe-systolic-os-128",
                 "--format", "json")
    assert result.code == 0, result.err
    assert '"cycles": "81791"' in result.out and "output_stationary" in result.out


def test_network_step_is_the_sum_of_its_layers():
    chip = load_hardware("xr-npe")
    step = parse_op("network network=resnet8 dtype=posit16_1")
    layers = [cost(layer, chip) for layer in step.layers()]
    assert cost(step, chip).time_s == pytest.approx(sum(c.time_s for c in layers))
    assert cost(step, chip).energy_j == pytest.approx(sum(c.energy_j for c in layers))

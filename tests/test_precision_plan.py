"""Per-layer precision plans on XR-NPE's SIMD lanes (issue 25, part 3): time and traffic by lane counts, the
numpy quantisation-error reference, and the plan tables."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from perfsim.analysis.precision_plan import plan_summary, plan_table, plot_tradeoff
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op
from perfsim.reference.quant_error import gemm_output_error, quantize, relative_error, scaled_quantize


@pytest.fixture(scope="module")
def npe():
    return load_hardware("xr-npe")


def _row(table, layer):
    return table.set_index("layer").loc[layer]


def test_halving_a_layers_bits_scales_time_and_traffic_by_its_lanes(npe):
    # resnet8's s1_conv1: 16 → 16 channels, 32 x 32, 3 x 3: im2col M = 1024, K = 144, N = 16, on one PE (1 x 1
    # matrix_2d): M·N tiles × ⌈K/lanes⌉ cycles + 1. posit(16,1), 1 lane: 16,384 · 144 + 1 = 2,359,297 cycles;
    # posit(8,0), 2 lanes: 16,384 · 72 + 1 = 1,179,649; fp4, 4 lanes: 16,384 · 36 + 1 = 589,825.
    # Traffic (no buffers: each MAC reads both operands, each output written once): (2·M·K·N + M·N) elements
    # = 4,734,976 at 2 B = 9,469,952 B, at 1 B = 4,734,976 B, at 0.5 B = 2,367,488 B.
    # Each MAC reads 4 B per cycle in every mode (1·2·2, 2·2·1, 4·2·0.5) < 6 B per cycle of the operand port:
    # compute-bound, so time = cycles / 1.72 GHz.
    base = plan_table("resnet8", npe, {}, "posit16_1")
    half = plan_table("resnet8", npe, {"s1_conv1": "posit8_0"}, "posit16_1")
    quarter = plan_table("resnet8", npe, {"s1_conv1": "fp4"}, "posit16_1")
    for table, lanes, cycles, moved in ((base, 1, 2359297, 9469952), (half, 2, 1179649, 4734976),
                                        (quarter, 4, 589825, 2367488)):
        row = _row(table, "s1_conv1")
        assert (row["lanes"], row["cycles"], row["main_bytes"]) == (lanes, cycles, moved)
        assert row["time_s"] == pytest.approx(cycles / 1.72e9)
        assert row["energy_j"] == pytest.approx(cycles * 14e-12)  # one PE, 14 pJ per cycle
    # every other layer is untouched by the plan
    others = base["layer"] != "s1_conv1"
    assert half[others]["time_s"].tolist() == base[others]["time_s"].tolist()


def test_plan_rejects_unknown_layers_and_formats(npe):
    with pytest.raises(PerfsimError, match="plan names"):
        plan_table("resnet8", npe, {"conv9": "fp4"})
    with pytest.raises(PerfsimError, match="unknown dtype"):
        parse_op('network network=resnet8 plan="{conv1: posit9}"')


def test_quantize_by_hand():
    # fp4 e2m1 holds 0, 0.5, 1, 1.5, 2, 3, 4, 6: 0.2 → 0, 0.3 → 0.5, 2.4 → 2, 7 → 6 (saturates)
    assert quantize([0.2, 0.3, 2.4, 7.0], "fp4").tolist() == [0.0, 0.5, 2.0, 6.0]
    # posit(8,0): 1 is exact; 3.3 has regime 110 (2^1), 4 fraction bits → steps of 0.125 → 3.25; beyond maxpos
    # 2^6 = 64 saturates; below minpos 2^-6 stays minpos (never 0)
    assert quantize([1.0, 3.3, 100.0, 1e-4], "posit8_0").tolist() == [1.0, 3.25, 64.0, 2.0**-6]
    # posit(4,1): maxpos 2^((4−2)·2) = 16, minpos 1/16
    assert quantize([1.0, 20.0, 0.01], "posit4_1").tolist() == [1.0, 16.0, 0.0625]
    # the per-tensor scale is a power of two: [3, 3] has RMS 3 → scale 2^round(log2 3) = 4 → 0.75 in fp4 is a tie
    # between 0.5 and 1, to even (1) → 4
    assert scaled_quantize([3.0, 3.0], "fp4").tolist() == [4.0, 4.0]
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0


def test_layer_error_orders_the_formats_by_precision():
    errors = [gemm_output_error(64, 144, 16, fmt) for fmt in ("posit16_1", "posit8_0", "fp4")]
    assert errors == sorted(errors) and errors[0] < 1e-3 < errors[2]
    assert gemm_output_error(8, 16, 4, "fp64") == 0.0


def test_summary_adds_layers_and_plots(npe):
    plans = {"posit16": {}, "conv in posit8": {"s1_conv1": "posit8_0", "s1_conv2": "posit8_0"}}
    summary = plan_summary("resnet8", npe, plans, "posit16_1")
    table = plan_table("resnet8", npe, plans["conv in posit8"], "posit16_1")
    row = summary.set_index("plan").loc["conv in posit8"]
    assert row["time_s"] == pytest.approx(table["time_s"].sum())
    assert row["output_error"] == np.nanmax(table["output_error"])
    assert isinstance(plot_tradeoff(summary), Figure)

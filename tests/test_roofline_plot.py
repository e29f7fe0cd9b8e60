import itertools
import re

import pytest
from matplotlib.text import Text

from perfsim.analysis.palette import device_colours
from perfsim.analysis.roofline_plot import PlottedOp, ceilings, plot_roofline
from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.models.scenario import Scenario
from perfsim.models.step import estimate_step
from perfsim.ops import Collective, parse_op

# Hand numbers from the specs. H100 SXM: bf16 989.4 TFLOP/s, int8 1978.9 TOPS, compute_efficiency 0.7009
# (CAL-GEMM-H100) -> 693.5 TFLOP/s and 1387.0 TOPS sustained; HBM 3.35 TB/s datasheet, memory_efficiency 0.8866
# -> 2.97011 TB/s sustained.
# MI300X: bf16 1307.4 TFLOP/s at 2.1 GHz; sustained 1307.4 x 1.207/2.1 x 0.9422 = 708.0 TFLOP/s; vector fp32
# 163.4 -> 88.49 TFLOP/s; HBM 5.3 TB/s x 0.7717 = 4.090 TB/s.
# A one-row GEMV runs in the GEMV kernel on the vector units: bf16 on the H100's CUDA cores, fp32 on MI300X's
# vector ALUs (they have no bf16), so those are the ceilings drawn for it.
H100_EFF = 0.7009
H100_HBM = 3.35e12 * 0.8866
H100_BF16_RIDGE = 989.4e12 * H100_EFF / H100_HBM  # 233.5 FLOP/B
H100_BF16_DATASHEET_RIDGE = 989.4e12 / 3.35e12  # 295.3 FLOP/B
H100_INT8_RIDGE = 1978.9e12 * H100_EFF / H100_HBM  # 467.0 OP/B
MI300X_SCALE = 1.207 / 2.1 * 0.9422
MI300X_FP32 = 163.4e12 * MI300X_SCALE  # 88.49 TFLOP/s


def _plot(devices: list[str], op_texts: list[str]):
    chips = [load_hardware(name) for name in devices]
    ops = [parse_op(text) for text in op_texts]
    return plot_roofline(chips, [PlottedOp(op.label, cost(op, chip), chip.name) for chip in chips for op in ops])


def _lines(fig, prefix: str) -> dict[str, object]:
    return {line.get_gid(): line for line in fig.axes[0].get_lines() if (line.get_gid() or "").startswith(prefix)}


def _numbers(text: str) -> set[int]:
    """'2,6–8' -> {2, 6, 7, 8}."""
    found: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("–")
        found |= set(range(int(lo), int(hi or lo) + 1))
    return found


def test_roofline_png_has_log_axes_and_labels(cli, tmp_path):
    out = tmp_path / "r.png"
    result = cli("roofline", "--hardware", "mi300x", "-o", str(out))
    assert result.code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_axes_ceilings_and_points():
    fig = _plot(["mi300x"], ["gemm m=1 n=8192 k=8192 name=gemv"])
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "FLOP/byte" in ax.get_xlabel() and "FLOP/s" in ax.get_ylabel()
    assert "mi300x" in ax.get_title()
    assert set(_lines(fig, "ceiling:mi300x:")) == {"ceiling:mi300x:fp32:sustained", "ceiling:mi300x:fp32:datasheet"}
    assert [t.get_text() for t in ax.texts if t.get_gid().startswith("op-label")] == ["1"]
    table = fig.axes[1].texts[0].get_text()
    # 2 x 8192^2 FLOP over 2 B x 8192^2 bf16 weights (+ two 16 KiB vectors) = 1.0 FLOP/B, HBM bound
    assert re.search(r"^ 1 gemv\s+1  hbm", table, re.M)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "mi300x fp32: 88.49 TFLOP/s (datasheet 163.4 TFLOP/s)" in legend


def test_ridge_is_that_of_the_plotted_ops_dtype():
    fig = _plot(["h100-sxm"], ["gemm m=1 n=4096 k=4096 name=gemv"])
    ridges = _lines(fig, "ridge:")
    assert not any(":fp8" in gid or ":int8" in gid for gid in ridges)  # not the fastest dtype's ridge
    assert ridges["ridge:h100-sxm:bf16:hbm:sustained"].get_xdata()[0] == pytest.approx(H100_BF16_RIDGE, rel=1e-4)
    assert ridges["ridge:h100-sxm:bf16:hbm:datasheet"].get_xdata()[0] == pytest.approx(H100_BF16_DATASHEET_RIDGE,
                                                                                        rel=1e-4)
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "ridge-label"]
    assert labels == ["ridge bf16: 233 FLOP/B"]


def test_integer_ops_are_in_op_per_second():
    fig = _plot(["h100-sxm"], ["gemm m=4096 n=4096 k=4096 dtype=int8 name=gemm-i8"])
    ax = fig.axes[0]
    assert "OP/s" in ax.get_ylabel() and "FLOP" not in ax.get_ylabel()
    assert "OP/byte" in ax.get_xlabel() and "FLOP" not in ax.get_xlabel()
    assert _lines(fig, "ridge:h100-sxm:int8:hbm:sustained")["ridge:h100-sxm:int8:hbm:sustained"].get_xdata()[0] \
        == pytest.approx(H100_INT8_RIDGE, rel=1e-4)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "h100-sxm int8: 1.387 POP/s (datasheet 1.979 POP/s)" in legend
    assert [t.get_text() for t in ax.texts if t.get_gid() == "ridge-label"] == ["ridge int8: 467 OP/B"]


def test_each_memory_level_has_its_own_colour_and_style():
    fig = _plot(["mi300x"], ["gemm m=1 n=4096 k=4096"])
    levels = _lines(fig, "diagonal:mi300x:")
    sustained = [line for gid, line in levels.items() if gid.endswith(":sustained")]
    assert len(sustained) == 3  # l2, infinity_cache, hbm
    assert len({line.get_color() for line in sustained}) == 3
    assert len({str(line.get_linestyle()) for line in sustained}) == 3


def test_sustained_and_datasheet_lines_where_a_calibration_changes_them():
    fig = _plot(["h100-sxm", "mi300x"], ["gemm m=1 n=4096 k=4096"])
    lines = _lines(fig, "")

    def slope(gid):  # bytes/s of a diagonal: y / x
        line = lines[gid]
        return line.get_ydata()[0] / line.get_xdata()[0]

    assert slope("diagonal:h100-sxm:hbm:sustained") == pytest.approx(H100_HBM, rel=1e-6)
    assert slope("diagonal:h100-sxm:hbm:datasheet") == pytest.approx(3.35e12, rel=1e-6)
    assert "diagonal:h100-sxm:l2:datasheet" not in lines  # no calibration of the L2
    assert lines["ceiling:h100-sxm:bf16:sustained"].get_ydata()[0] == pytest.approx(989.4e12 * H100_EFF, rel=1e-6)
    assert lines["ceiling:h100-sxm:bf16:datasheet"].get_ydata()[0] == pytest.approx(989.4e12, rel=1e-6)
    assert lines["ceiling:mi300x:fp32:sustained"].get_ydata()[0] == pytest.approx(MI300X_FP32, rel=1e-6)
    assert lines["ceiling:mi300x:fp32:datasheet"].get_ydata()[0] == pytest.approx(163.4e12, rel=1e-6)
    assert lines["ceiling:mi300x:fp32:datasheet"].get_alpha() < lines["ceiling:mi300x:fp32:sustained"].get_alpha()


def test_device_colours_do_not_depend_on_order():
    one = _lines(_plot(["h100-sxm", "mi300x"], ["gemm m=1 n=4096 k=4096"]), "ceiling:")
    other = _lines(_plot(["mi300x", "h100-sxm"], ["gemm m=1 n=4096 k=4096"]), "ceiling:")
    for gid in ("ceiling:h100-sxm:bf16:sustained", "ceiling:mi300x:fp32:sustained"):
        assert one[gid].get_color() == other[gid].get_color()
    assert one["ceiling:h100-sxm:bf16:sustained"].get_color() != one["ceiling:mi300x:fp32:sustained"].get_color()
    # mi300x and m3-max-gpu hash to the same palette slot (crc32 % 10 == 5): they still differ on one plot
    both = device_colours(["mi300x", "m3-max-gpu"])
    assert both["mi300x"] != both["m3-max-gpu"]
    assert device_colours(["m3-max-gpu", "mi300x"]) == both


def test_labels_of_a_decode_step_on_two_devices_never_overlap():
    points = []
    chips = []
    for name in ("h100-sxm", "mi300x"):
        step = estimate_step(Scenario(model="llama-3-8b", hardware=name, phase="decode"))
        chips.append(step.resolved.chip)
        unique = {t.op.label: c for t, c in zip(step.trace.ops, step.costs, strict=True)
                  if not isinstance(t.op, Collective)}
        points += [PlottedOp(label, c, name) for label, c in unique.items()]
    fig = plot_roofline(chips, points)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid().startswith(("op-label", "ridge-label"))]
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    for (a, box_a), (b, box_b) in itertools.combinations(zip(labels, boxes, strict=True), 2):
        assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())
    inside = ax.get_window_extent(renderer)
    assert all(inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
               for box in boxes)
    # every op with FLOPs is numbered on the plot for each device; the table names every op
    names = list(dict.fromkeys(p.label for p in points))
    for name in ("h100-sxm", "mi300x"):
        shown = set().union(*(_numbers(t.get_text()) for t in labels if t.get_gid().startswith(f"op-label:{name}:")))
        assert shown == {names.index(p.label) + 1 for p in points if p.device == name and p.cost.flops > 0}
    table = fig.axes[1].texts[0].get_text()
    assert all(re.search(rf"^\s*{i} {n} ", table, re.M) for i, n in enumerate(names, 1))


def test_dtypes_with_equal_peaks_share_a_ceiling():
    labels = dict(ceilings(load_hardware("h100-sxm")))
    assert any("bf16" in k and "fp16" in k for k in labels)


def test_compare_and_svg(cli, tmp_path):
    out = tmp_path / "r.svg"
    result = cli("roofline", "--hardware", "h100-sxm", "--compare", "mi300x,a100-sxm-80gb",
                 "--op", "gemm m=1 n=4096 k=4096", "-o", str(out), "--format", "json")
    assert result.code == 0
    assert out.read_text().lstrip().startswith("<?xml")

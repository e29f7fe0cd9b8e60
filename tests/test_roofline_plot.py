from perfsim.analysis.roofline_plot import PlottedOp, ceilings, plot_roofline
from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.ops import parse_op


def test_roofline_png_has_log_axes_and_labels(cli, tmp_path):
    out = tmp_path / "r.png"
    result = cli("roofline", "--hardware", "mi300x", "-o", str(out))
    assert result.code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_axes_ceilings_and_points():
    mi300x = load_hardware("mi300x")
    op = parse_op("gemm m=1 n=8192 k=8192 name=gemv")
    fig = plot_roofline([mi300x], [PlottedOp("gemv", cost(op, mi300x), "mi300x")])
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "FLOP/byte" in ax.get_xlabel() and "FLOP/s" in ax.get_ylabel()
    assert "mi300x" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("gemv") for t in texts)
    assert any("bf16" in t for t in texts)  # a ceiling per dtype, labelled
    assert any(t.startswith("ridge") for t in texts)
    assert len(ax.get_legend().get_texts()) == len(mi300x.memory)  # a diagonal per memory level


def test_dtypes_with_equal_peaks_share_a_ceiling():
    labels = dict(ceilings(load_hardware("h100-sxm")))
    assert any("bf16" in k and "fp16" in k for k in labels)


def test_compare_and_svg(cli, tmp_path):
    out = tmp_path / "r.svg"
    result = cli("roofline", "--hardware", "h100-sxm", "--compare", "mi300x,a100-sxm-80gb",
                 "--op", "gemm m=1 n=4096 k=4096", "-o", str(out), "--format", "json")
    assert result.code == 0
    assert out.read_text().lstrip().startswith("<?xml")

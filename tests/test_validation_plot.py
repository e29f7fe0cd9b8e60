import pytest
from matplotlib.patches import Rectangle

from perfsim.analysis.validation_plot import plot_validation
from perfsim.validation.report import validation_report


def _row(case_id, kind, role, predicted, published, low=None, high=None, result="ok", reason=""):
    return {"id": case_id, "hardware": f"{kind}-chip", "kind": kind, "role": role, "result": result,
            "published": published, "predicted": predicted, "reason": reason,
            "predicted_low": predicted if low is None else low, "predicted_high": predicted if high is None else high}


ROWS = [
    _row("GPU-1", "accelerator", "validation", 2.0, 4.0),  # 2 / 4 = 0.5x
    _row("GPU-2", "accelerator", "validation", 3.0, 1.5, low=2.4, high=3.3),  # 2x, band 1.6x-2.2x
    _row("CPU-1", "cpu", "validation", 1.1, 1.0),  # 1.1x
    _row("CAL-1", "accelerator", "calibration", 7.0, 7.0),  # 1x by construction
    _row("MESH-1", "wafer_mesh", "validation", None, 5.0, result="unsupported",
         reason="needs the PLMR wafer-mesh cost model"),
]


def _cases(fig):
    """{case id: (axes index, y of its marker)}."""
    return {line.get_gid()[5:]: (i, line.get_ydata()[0]) for i, ax in enumerate(fig.axes)
            for line in ax.get_lines() if (line.get_gid() or "").startswith("case:")}


def test_ratio_axis_is_log_with_half_one_two_ticks():
    fig = plot_validation(ROWS)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    ticks = list(ax.get_yticks())
    assert {0.5, 1.0, 2.0} <= set(ticks)
    fig.canvas.draw()
    assert {"0.5×", "1×", "2×"} <= {t.get_text() for t in ax.get_yticklabels()}
    bands = {(round(p.get_y(), 6), round(p.get_y() + p.get_height(), 6)) for p in ax.patches
             if isinstance(p, Rectangle)}
    assert {(0.85, 1.15), (0.5, 2.0)} <= bands  # the shaded +-15 % and 0.5x-2x bands


def test_each_case_at_its_ratio_and_calibration_apart():
    cases = _cases(plot_validation(ROWS))
    assert cases["GPU-1"] == (0, pytest.approx(0.5))
    assert cases["GPU-2"] == (0, pytest.approx(2.0))
    assert cases["CPU-1"] == (0, pytest.approx(1.1))
    assert cases["CAL-1"] == (1, pytest.approx(1.0))  # in the second panel
    assert "MESH-1" not in cases


def test_cases_grouped_by_hardware_class():
    fig = plot_validation(ROWS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["GPU-1", "GPU-2", "CPU-1"]  # the larger group first
    assert {"accelerator (2)", "cpu (1)"} <= {t.get_text() for t in ax.texts}
    gap = [line.get_xdata()[0] for line in ax.get_lines() if (line.get_gid() or "").startswith("case:")]
    assert gap == [0, 1, 3]  # one empty slot between the groups


def test_unsupported_cases_are_listed_with_what_they_lack():
    fig = plot_validation(ROWS)
    listed = [t.get_text() for t in fig.texts if t.get_gid() == "not-scored"]
    assert listed == ["Not scored:\nMESH-1 (wafer_mesh-chip, wafer_mesh, unsupported): "
                      "needs the PLMR wafer-mesh cost model"]


def test_only_unsupported_cases_still_draw():
    fig = plot_validation([ROWS[-1]])
    fig.canvas.draw()
    assert [t.get_gid() for t in fig.texts if t.get_gid()] == ["not-scored"]


def test_shipped_report_shows_every_case():
    rows = validation_report()["cases"]
    fig = plot_validation(rows)
    fig.canvas.draw()
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    listed = next(t.get_text() for t in fig.texts if t.get_gid() == "not-scored")
    for row in rows:
        assert (row["id"] in ticks) == (row["result"] == "ok")
        assert (f"\n{row['id']} (" in listed) == (row["result"] != "ok")

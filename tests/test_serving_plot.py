"""The serving picture and the time-weighted batch: hand-made series, bounded points, marks and SLO lines."""

import io
from array import array
from types import SimpleNamespace

import numpy as np
import pytest

from perfsim.serving.arrivals import Request
from perfsim.serving.plot import MAX_POINTS, ccdf, downsample, plot_serving
from perfsim.serving.report import Recorder, serving_figure, summary, time_weighted_mean
from perfsim.serving.run import _with_progress


def test_mean_batch_is_weighted_by_time():
    # batch 1 for 0.3 s, then batch 3 for 0.1 s: (1·0.3 + 3·0.1) / 0.4 = 1.5 (the mean over iterations is 2)
    assert time_weighted_mean(array("I", [1, 3]), array("d", [0.3, 0.1])) == pytest.approx(1.5)
    assert time_weighted_mean(array("I"), array("d")) is None


def test_summary_reports_the_time_weighted_batch():
    result = SimpleNamespace(finished=1, output_tokens=2, makespan_s=0.4, iterations=3, preemptions=0,
                             batch_sizes=array("I", [2, 4, 1]), durations_s=array("d", [0.1, 0.1, 0.2]),
                             busy_energy_j=120.0, busy_chip_s=0.4)
    rec = Recorder(None, None)
    rec(Request(0, 0.0, 10, 2), first_token_s=0.1, end_s=0.4)
    shown = summary(result, rec, devices=1)
    # (2·0.1 + 4·0.1 + 1·0.2) / 0.4 = 0.8 / 0.4 = 2.0 (over iterations: 7 / 3 = 2.33)
    assert shown["mean_batch"] == pytest.approx(2.0)
    # busy the whole 0.4 s: 120 J, 60 J per output token, 300 W
    assert (shown["energy_j"], shown["joules_per_token"], shown["average_power_w"]) == pytest.approx((120, 60, 300))


def test_downsample_keeps_extremes_in_order():
    values = np.arange(10_000, dtype=float)
    values[5_000], values[7_001] = 1e6, -5.0
    times = np.arange(10_000) * 0.5
    t, v = downsample(times, values, limit=100)
    assert len(v) <= 100
    assert v.max() == 1e6 and v.min() == -5.0  # the spike and the dip survive
    assert t[v.argmax()] == 2_500.0 and t[v.argmin()] == 3_500.5
    assert np.all(np.diff(t) > 0)
    short = np.array([3.0, 1.0])
    assert downsample(short, short)[1] is short  # ≤ limit: untouched


def test_ccdf_small_is_exact():
    # sorted 1, 2, 3, 4: a fraction 4/4 of requests is ≥ 1, 3/4 ≥ 2, 2/4 ≥ 3, 1/4 ≥ 4; the NaN is dropped
    xs, ys = ccdf(array("d", [4.0, 1.0, float("nan"), 3.0, 2.0]))
    assert list(xs) == [1.0, 2.0, 3.0, 4.0]
    assert list(ys) == [1.0, 0.75, 0.5, 0.25]


def test_ccdf_large_is_bounded_and_keeps_both_ends():
    n = 1_000_000
    values = array("d", np.arange(1, n + 1, dtype=float))
    xs, ys = ccdf(values)
    assert len(xs) <= MAX_POINTS
    assert (xs[0], ys[0]) == (1.0, 1.0)  # everything is ≥ the minimum
    assert (xs[-1], ys[-1]) == (float(n), 1 / n)  # only the maximum is ≥ the maximum
    assert np.all(np.diff(xs) > 0)
    # exact in the tail: the 10th largest value (n − 9) at fraction 10 / n
    assert ys[list(xs).index(n - 9.0)] == pytest.approx(10 / n)


def _lines(figure):
    return [line for ax in figure.axes for line in ax.get_lines()]


def test_plot_of_a_million_iterations_is_bounded_and_marked():
    rng = np.random.default_rng(0)
    n_iter, n_req = 1_000_000, 200_000
    times = array("d", np.cumsum(rng.uniform(0.01, 0.02, n_iter)))
    batch = array("I", rng.integers(1, 200, n_iter).astype(np.uint32))
    queue = array("I", rng.integers(0, 50, n_iter).astype(np.uint32))
    kv = array("d", rng.uniform(0, 1000, n_iter))
    latencies = {name: array("d", rng.lognormal(mu, 0.5, n_req)) for name, mu in (("TTFT", -3), ("TPOT", -4),
                                                                                  ("E2E", 0))}
    marks = {"TTFT": {"p50": 0.05, "p99": 0.16}, "TPOT": {"p50": 0.018, "p99": None}, "E2E": {"p50": 1.0, "p99": 3.2}}
    fig = plot_serving("m on h", latencies, marks, {"TTFT": 0.2, "TPOT": 0.03}, times, batch, queue, kv, 2000)
    assert all(len(line.get_xdata()) <= MAX_POINTS for line in _lines(fig))
    points = {(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in _lines(fig)
              if line.get_marker() == "o"}
    assert points == {(0.05, 0.5), (0.16, 0.01), (0.018, 0.5), (1.0, 0.5), (3.2, 0.01)}  # no TPOT p99 given
    slo_lines = sorted(line.get_xdata()[0] for line in _lines(fig) if line.get_linestyle() == "--")
    assert slo_lines == [0.03, 0.2]
    tails, sequences, cache = fig.axes
    assert (tails.get_xscale(), tails.get_yscale()) == ("log", "log")
    assert [line.get_label() for line in sequences.get_lines()] == ["running (batch)", "waiting (queue)"]
    kv_line = cache.get_lines()[0]
    assert max(kv_line.get_ydata()) <= 50.0  # ≤ 1000 of 2000 tokens: ≤ 50 %
    assert "2,000 tokens" in cache.get_ylabel()


def test_serving_figure_titles_model_hardware_and_rate():
    # a result carrying the per-iteration series a scheduler records
    result = SimpleNamespace(times_s=array("d", [0.1, 0.2, 1.3]), batch_sizes=array("I", [1, 2, 1]),
                             queue_depths=array("I", [1, 0, 0]), kv_tokens=array("d", [100.0, 220.0, 130.0]),
                             kv_capacity_tokens=1000)
    rec = Recorder(slo_ttft_s=0.5, slo_tpot_s=None)
    rec(Request(0, 0.0, 90, 3), first_token_s=0.1, end_s=0.3)
    rec(Request(1, 0.0, 100, 2), first_token_s=0.2, end_s=0.3)
    rec(Request(2, 1.0, 120, 2), first_token_s=1.2, end_s=1.3)
    figure = serving_figure(result, rec, "llama-2-7b on a100-sxm-80gb")
    sink = io.BytesIO()
    figure.savefig(sink, format="png")
    assert sink.getvalue()[:4] == b"\x89PNG"
    # 3 requests arriving over 1 s: (3 − 1) / (1.0 − 0.0) = 2 requests/s
    assert figure.get_suptitle() == "llama-2-7b on a100-sxm-80gb · 2 requests/s offered · 3 requests"


def test_progress_only_after_the_delay(capsys):
    rec = Recorder(None, None)
    quiet = _with_progress(rec, total=2)  # a run shorter than a second shows nothing
    quiet(Request(0, 0.0, 8, 2), 0.1, 0.2)
    quiet(Request(1, 0.0, 8, 2), 0.1, 0.2)
    assert capsys.readouterr().err == ""
    shown = _with_progress(Recorder(None, None), total=2, delay_s=0.0)
    shown(Request(0, 0.0, 8, 2), 0.1, 0.2)
    shown(Request(1, 0.0, 8, 2), 0.1, 0.2)
    assert capsys.readouterr().err.endswith(f"\r[{'#' * 30}] 2/2 requests\n")

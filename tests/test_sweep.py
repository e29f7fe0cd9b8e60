"""Sweeps: the YAML and its expansion, spec overrides by dotted path, one row per point with a reason for the
points that have no result, the same rows in process, on a pool and on a Dask cluster, and resuming."""

import json

import pandas as pd
import pytest

from perfsim import api
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.planning.evaluate import evaluate
from perfsim.planning.overrides import with_field
from perfsim.planning.sweep_spec import Point, SweepSpec, expand, load_sweep, size

SMALL = {"mode": "analytic", "base": {"model": "llama-3-8b", "context": 1024},
         "axes": {"hardware": ["h100-sxm", "mi300x"], "batch": [1, 8], "phase": ["prefill", "decode"]}}


def test_expansion_is_the_product_times_the_listed_points():
    spec = SweepSpec(base={"model": "m", "hardware": "h"}, axes={"tp": [1, 2], "batch": [1, 2, 4]},
                     points=[{"devices": 2}, {"devices": 4, "batch": 99}],
                     hardware_overrides={"memory.hbm.bandwidth": ["1 TB/s", "2 TB/s"]})
    points = expand(spec)
    # 2 listed × (2 tp × 3 batch) × 2 overrides = 24; an axis wins over a listed point's field
    assert size(spec) == len(points) == 24
    assert {p.fields["batch"] for p in points} == {1, 2, 4}
    assert points[0] == Point({"model": "m", "hardware": "h", "devices": 2, "tp": 1, "batch": 1},
                              {"memory.hbm.bandwidth": "1 TB/s"}, "analytic")
    assert len({p.point_id for p in points}) == 24


@pytest.mark.parametrize(("data", "needle"), [
    ({"mode": "serving", "base": {"model": "m", "hardware": "h", "batch": 4}}, "base.batch: not a field of a serving"),
    ({"base": {"model": "m", "hardware": "h"}, "axes": {"rate": [1]}}, "axes.rate: not a field of a analytic"),
    ({"base": {"model": "m", "hardware": "h"}, "axes": {"tp": []}}, "axes.tp: an axis needs at least one value"),
    ({"base": {"model": "m"}}, "hardware: give it in base, axes or every listed point"),
    ({"base": {"model": "m", "hardware": "h"}, "axis": {}}, "axis"),
    ({"mode": "serving", "base": {"model": "m", "hardware": "h"}, "hardware_overrides": {"a.b": [1]}},
     "hardware_overrides: a serving simulation takes hardware by name or path"),
])
def test_bad_sweep_files_name_the_field(tmp_path, data, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(PerfsimError, match=needle.replace("(", r"\(")):
        load_sweep(path)


def test_overrides_go_through_the_spec_validation():
    h100 = load_hardware("h100-sxm")
    assert with_field(h100, "memory.hbm.bandwidth", "4 TB/s").main.bandwidth == 4e12
    assert with_field(h100, "memory.1.bandwidth", "4 TB/s").main.bandwidth == 4e12
    dgx = with_field(load_hardware("dgx-h100"), "member.memory.hbm.capacity", "141 GiB")
    assert dgx.device.main.capacity == 141 * 2**30
    with pytest.raises(PerfsimError, match=r"memory\.hbm\.bandwith: MemoryLevel has no field 'bandwith'"):
        with_field(h100, "memory.hbm.bandwith", "4 TB/s")
    with pytest.raises(PerfsimError, match="capacities are binary"):
        with_field(h100, "memory.hbm.capacity", "80 GB")


def test_an_overridden_bandwidth_speeds_a_memory_bound_decode_step():
    # decode at batch 1 is memory-bound on HBM: raising the bandwidth 3.35 → 6.7 TB/s must shorten the step,
    # and no more than halve it (launch overheads do not scale)
    base = {"model": "llama-3-8b", "hardware": "h100-sxm", "batch": 1}
    faster = {"memory.hbm.bandwidth": "6.7 TB/s"}
    slow, fast = (evaluate(Point(base, overrides, "analytic")) for overrides in ({}, faster))
    assert slow["bound"] == "memory:hbm"
    assert slow["step_s"] / 2 <= fast["step_s"] < slow["step_s"]
    assert fast["memory.hbm.bandwidth"] == "6.7 TB/s"


def test_points_without_a_result_get_a_reason_and_the_sweep_goes_on():
    result = api.sweep({"base": {"model": "llama-3-70b", "hardware": "h100-sxm"},
                        "axes": {"tp": [1, 3]}, "points": [{"devices": 1}, {"devices": 2}]}, workers=1)
    frame = result.to_frame()
    assert len(frame) == 4 and result.summary == {"points": 4, "computed": 4, "kept": 0, "invalid": 4}
    reasons = frame.set_index(["devices", "tp"])["reason"]
    assert "does not fit on h100-sxm" in reasons[(1, 1)]
    assert "tp (3) × pp (1) must divide the 2 devices" in reasons[(2, 3)]
    assert frame["step_s"].isna().all()


def test_an_analytic_row_is_the_step_estimate_with_cost_by_hand():
    row = evaluate(Point({"model": "llama-3-8b", "hardware": "h100-sxm", "batch": 8}, {}, "analytic"))
    step = api.step("llama-3-8b", "h100-sxm", batch=8, engine="analytic")
    assert row["step_s"] == pytest.approx(step.step_s, rel=1e-12)
    assert row["tokens_per_s"] == pytest.approx(8 / step.step_s, rel=1e-12)
    # one chip at [1.65, 6.88] USD/h; per million tokens = USD/h / (tokens/s · 3600) · 1e6
    assert (row["cost_per_hour_low_usd"], row["cost_per_hour_high_usd"]) == (1.65, 6.88)
    assert row["cost_per_million_tokens_low_usd"] == pytest.approx(1.65 / (8 / step.step_s * 3600) * 1e6)
    assert row["reason"] is None


def test_pool_and_in_process_give_the_same_rows():
    one, two = api.sweep(SMALL, workers=1).to_frame(), api.sweep(SMALL, workers=2).to_frame()
    assert len(one) == 8
    pd.testing.assert_frame_equal(one, two)


def test_the_same_sweep_runs_unchanged_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        on_dask = api.sweep(SMALL, dask=cluster.scheduler_address).to_frame()
    pd.testing.assert_frame_equal(on_dask, api.sweep(SMALL, workers=1).to_frame())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_rerun_computes_only_the_missing_points(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"results{suffix}"
    half = {**SMALL, "axes": {**SMALL["axes"], "batch": [1]}}
    first = api.sweep(half, path, workers=1)
    assert (first.computed, first.kept) == (4, 0)
    full = api.sweep(SMALL, path, workers=1)
    assert (full.computed, full.kept) == (4, 4)  # batch 8's four points only
    again = api.sweep(SMALL, path, workers=1)
    assert (again.computed, again.kept) == (0, 8)
    fresh = api.sweep(SMALL, workers=1).to_frame()
    stored = again.to_frame()
    assert list(stored["point_id"]) == list(fresh["point_id"])
    assert stored["step_s"].to_numpy() == pytest.approx(fresh["step_s"].to_numpy(), rel=1e-12)


def test_a_missing_optional_package_is_one_line(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without pyarrow imports
    with pytest.raises(PerfsimError, match=r"needs pyarrow: pip install 'perfsim\[sweep\]'"):
        api.sweep(SMALL, tmp_path / "r.parquet", workers=1)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(PerfsimError, match=r"--dask needs distributed: pip install 'perfsim\[dask\]'"):
        api.sweep(SMALL, dask="tcp://127.0.0.1:1")


def test_cli_sweep(cli, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(SMALL))
    result = cli("sweep", str(path), "--workers", "1", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert len(rows) == 8 and all(row["reason"] is None for row in rows)
    out = tmp_path / "r.csv"
    result = cli("sweep", str(path), "--workers", "1", "-o", str(out), "--format", "json")
    assert json.loads(result.out) == {"points": 8, "computed": 8, "kept": 0, "invalid": 0}
    assert len(pd.read_csv(out)) == 8
    bad = cli("sweep", str(path), "--workers", "0")
    assert bad.code == 2 and bad.err.strip() == "perfsim: error: --workers must be at least 1, got 0"
    bad = cli("sweep", str(path), "-o", str(tmp_path / "r.txt"))
    assert bad.code == 2 and "must end in .parquet or .csv" in bad.err


def test_an_interrupted_sweep_keeps_its_finished_points(tmp_path):
    from perfsim.planning.runner import run

    points = expand(SweepSpec(**SMALL))
    path = tmp_path / "results.csv"

    def interrupt(done, total):
        raise KeyboardInterrupt  # the user presses Ctrl-C once the first chunk is in

    with pytest.raises(KeyboardInterrupt):
        run(points, path, workers=1, on_progress=interrupt)
    # one worker: 8 points in chunks of ⌈8 / 4⌉ = 2, so the first chunk's 2 rows were written
    assert len(pd.read_csv(path)) == 2
    rest = run(points, path, workers=1)
    assert (rest.computed, rest.kept) == (6, 2)


def test_an_op_sweep_varies_a_mac_arrays_shape_through_its_spec(tmp_path):
    # 256³ int8, output-stationary on R × C: ⌈256/R⌉·⌈256/C⌉ folds of R + C + K − 2 cycles back to back, total − 1
    # (SCALE-Sim's count). 128 × 128: 4 folds of 510 → 2,039; 64 × 64: 16 folds of 382 → 6,111;
    # 64 × 128: 4 · 2 = 8 folds of 446 → 3,567.
    path = tmp_path / "arrays.yaml"
    path.write_text("mode: op\nbase: {hardware: tpe-systolic-os-128, op: 'gemm m=256 n=256 k=256 dtype=int8'}\n"
                    "hardware_overrides: {array.rows: [64, 128], array.cols: [64, 128]}\n")
    frame = api.sweep(path).to_frame().set_index(["array.rows", "array.cols"])
    assert frame["reason"].isna().all()
    assert int(frame.loc[(128, 128), "cycles"]) == 2_039
    assert int(frame.loc[(64, 64), "cycles"]) == 6_111
    assert int(frame.loc[(64, 128), "cycles"]) == 3_567


def test_an_op_sweep_needs_an_op(tmp_path):
    path = tmp_path / "no-op.yaml"
    path.write_text("mode: op\nbase: {hardware: tpe-systolic-os-128}\n")
    with pytest.raises(PerfsimError, match="op: give it in base, axes or every listed point"):
        api.sweep(path)

"""Budget: the 10,240-point analytic sweep of workloads/sweeps/bench-10000.yaml under 10 s on 2 cores (a process
pool of 2), and the same sweep on a 2-worker Dask LocalCluster (worker processes, one thread each; the cluster's
start is outside the timed call). Wall-clock budgets: run with `make bench`."""

import time
from pathlib import Path

import pytest

from perfsim import api

SWEEP = Path(__file__).resolve().parents[2] / "workloads" / "sweeps" / "bench-10000.yaml"
BUDGET_S = 10.0


def _timed_sweep(**where) -> tuple[float, api.SweepResult]:
    start = time.perf_counter()
    result = api.sweep(SWEEP, **where)
    return time.perf_counter() - start, result


def test_sweep_10000_analytic_points_on_a_pool_of_2(budget_benchmark):
    wall_s, result = budget_benchmark.pedantic(_timed_sweep, kwargs={"workers": 2}, rounds=1, iterations=1)
    print(f"\n10,240-point analytic sweep, process pool of 2: {wall_s:.1f} s")
    assert result.summary["points"] == 10240 and result.computed == 10240
    assert wall_s < BUDGET_S


def test_sweep_10000_analytic_points_on_a_2_worker_dask_cluster(budget_benchmark):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        wall_s, result = budget_benchmark.pedantic(_timed_sweep, kwargs={"dask": cluster.scheduler_address}, rounds=1,
                                        iterations=1)
    print(f"\n10,240-point analytic sweep, 2-worker Dask LocalCluster: {wall_s:.1f} s")
    assert result.summary["points"] == 10240 and result.computed == 10240

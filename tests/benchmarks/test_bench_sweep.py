"""Budget: the 10,240-point analytic sweep of workloads/sweeps/bench-10000.yaml under 10 s on 2 cores (a process
pool of 2), and the same sweep on a 2-worker Dask LocalCluster (worker processes, one thread each; the cluster's
start is outside the timed call)."""

from pathlib import Path

import pytest

from perfsim import api

SWEEP = Path(__file__).resolve().parents[2] / "workloads" / "sweeps" / "bench-10000.yaml"


def test_sweep_10000_analytic_points_on_a_pool_of_2(benchmark):
    result = benchmark.pedantic(api.sweep, args=(SWEEP,), kwargs={"workers": 2}, rounds=1, iterations=1)
    assert result.summary["points"] == 10240 and result.computed == 10240


def test_sweep_10000_analytic_points_on_a_2_worker_dask_cluster(benchmark):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = benchmark.pedantic(api.sweep, args=(SWEEP,), kwargs={"dask": cluster.scheduler_address}, rounds=1,
                                    iterations=1)
    assert result.summary["points"] == 10240 and result.computed == 10240

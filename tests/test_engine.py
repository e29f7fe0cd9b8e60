"""The discrete-event engine against timelines worked out by hand."""

import json

import pytest

from perfsim.engine import Task, simulate
from perfsim.engine.fluid import FluidPool
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step


def _task(i, demands, deps=(), stream="compute", engine="matrix", chip=0, overhead=0.0, name=None):
    return Task(i, name or f"t{i}", chip, (chip,), stream, engine if stream == "compute" else None, demands,
                overhead, tuple(deps), next(iter(demands), "none"))


def _flows(starts):
    """Flows on one link (1 s alone each) starting at the given times: [(name, end)]."""
    import simpy

    env = simpy.Environment()
    pool = FluidPool(env)
    log = []

    def flow(name, start):
        yield env.timeout(start)
        yield pool.run({"link": 1.0})
        log.append((name, env.now))

    for name, start in starts:
        env.process(flow(name, start))
    env.run()
    return sorted(log)


def test_two_equal_flows_share_a_link():
    assert _flows([("a", 0.0), ("b", 0.0)]) == [("a", 2.0), ("b", 2.0)]


def test_a_flow_starting_halfway_finishes_at_twice_the_solo_time():
    # a runs alone for 0.5 s (half done), then both at half speed: a ends at 1.5 s, b has 0.5 left and ends at 2 s
    assert _flows([("a", 0.0), ("b", 0.5)]) == [("a", 1.5), ("b", 2.0)]


def test_a_flow_is_slowed_only_by_the_resource_it_shares():
    tasks = [_task(0, {"chip0:memory:hbm": 1.0, "chip0:link:x": 0.2}, stream="comm"),
             _task(1, {"chip0:memory:hbm": 1.0}, engine="vector")]
    s = simulate(tasks)
    assert s.end_s == [2.0, 2.0]  # both share HBM at half speed


def test_an_all_reduce_hides_behind_independent_compute():
    compute = _task(0, {"chip0:matrix": 1e-3, "chip0:memory:hbm": 4e-4}, name="next_layer_gemm")
    reduce_ = _task(1, {"chip0:link:nvswitch": 5e-4}, stream="comm", name="tp_all_reduce")
    s = simulate([compute, reduce_])
    assert s.makespan_s == 1e-3  # the 0.5 ms all-reduce runs under the 1 ms GEMM
    assert (s.start_s[1], s.end_s[1]) == (0.0, 5e-4)
    assert [s.tasks[i].name for i in s.critical_path()] == ["next_layer_gemm"]


def test_same_stream_runs_in_issue_order():
    s = simulate([_task(0, {"chip0:matrix": 1.0}), _task(1, {"chip0:matrix": 2.0})])
    assert list(zip(s.start_s, s.end_s, strict=True)) == [(0.0, 1.0), (1.0, 3.0)]
    assert s.critical_path() == [0, 1]


def test_overhead_delays_an_op():
    s = simulate([_task(0, {"chip0:matrix": 1.0}, overhead=0.25)])
    assert s.makespan_s == 1.25


def test_pipeline_bubble_fraction():
    p, m, t = 4, 6, 1.0
    tasks = []
    for mb in range(m):
        for stage in range(p):
            deps = (len(tasks) - 1,) if stage else ()
            tasks.append(Task(len(tasks), f"s{stage}", stage, (stage,), "compute", "matrix",
                              {f"chip{stage}:matrix": t}, 0.0, deps, "compute", mb))
    s = simulate(tasks)
    assert s.makespan_s == (m + p - 1) * t
    idle = 1 - m * t / s.makespan_s
    assert idle == pytest.approx((p - 1) / (m + p - 1))


def test_single_chip_step_equals_the_analytical_estimate():
    r = resolve(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", batch=4, context=1024))
    assert estimate_step(r, engine="des").step_s == estimate_step(r).step_s


def test_pipelined_micro_batches_overlap():
    r = resolve(Scenario(model="llama-2-7b", hardware="dgx-h100", pp=4, devices=4, micro_batches=8, batch=32))
    analytic, des = estimate_step(r), estimate_step(r, engine="des")
    per_micro_batch_stage = analytic.step_s / (8 * 4)
    assert des.step_s < analytic.step_s
    # stages are nearly equal (stage 0 adds the embedding, stage 3 the LM head): ≈ (m + p − 1) stage times
    assert des.step_s == pytest.approx((8 + 4 - 1) * per_micro_batch_stage, rel=0.1)


def test_same_inputs_same_timeline():
    r = resolve(Scenario(model="mixtral-8x7b", hardware="dgx-h100", tp=2, ep=8, expert_tp=1, batch=8, dp=4))
    a = estimate_step(r, engine="des").schedule.timeline()
    b = estimate_step(r, engine="des").schedule.timeline()
    assert a.equals(b)


def test_des_timeline_cli(cli, tmp_path):
    out = tmp_path / "timeline"
    result = cli("estimate", "--model", "llama-3-70b", "--hardware", "dgx-h100", "--tp", "8", "--phase", "decode",
                 "--batch", "64", "--context", "2048", "--engine", "des", "--timeline", str(out), "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["engine"] == "des"
    assert data["busiest_resource_s"] <= data["tpot_s"] <= data["analytic_step_s"]
    trace = json.loads((out / "trace.json").read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in complete} == set(range(8))  # one track per chip ...
    assert {e["tid"] for e in complete} == {0, 1}  # ... and per stream (compute, comm)
    assert (out / "gantt.png").read_bytes()[:4] == b"\x89PNG"
    header = (out / "timeline.csv").read_text().splitlines()[0]
    assert header == "task,op,chip,stream,resource,micro_batch,start_s,end_s,bound"


def test_multi_chip_defaults_to_des(cli):
    out = json.loads(cli("estimate", "--model", "llama-2-7b", "--hardware", "dgx-h100", "--tp", "8", "--format",
                         "json").out)
    assert out["engine"] == "des"
    single = json.loads(cli("estimate", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--format", "json").out)
    assert single["engine"] == "analytic"


def test_timeline_needs_des(cli, tmp_path):
    result = cli("estimate", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--engine", "analytic",
                 "--timeline", str(tmp_path))
    assert result.code == 2 and "--timeline needs --engine des" in result.err

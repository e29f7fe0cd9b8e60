"""The discrete-event engine against timelines worked out by hand."""

import json
import signal
from contextlib import contextmanager

import pandas as pd
import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfsim.cost import OpCost
from perfsim.engine import Task, simulate, tasks_from_stages
from perfsim.engine.blocks import Block, Slot, Stage, demands_of, pipeline_s, stages_of
from perfsim.engine.chains import chain_schedule, contended
from perfsim.engine.export import chip_roles, gantt, role_label
from perfsim.engine.fluid import FluidPool
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step


@contextmanager
def deadline(seconds):
    """Fail instead of hanging: SIGALRM after `seconds`."""

    def stop(*_):
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


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
    serial = sum(c.time_s * t.repeat for c, t in zip(analytic.costs, analytic.trace.ops, strict=True))
    per_micro_batch_stage = serial / 4
    # stages are nearly equal (stage 0 adds the embedding, stage 3 the LM head): ≈ (m + p − 1) stage times,
    # where one micro-batch through every stage one after another would take m · p stage times
    assert des.step_s == pytest.approx((8 + 4 - 1) * per_micro_batch_stage, rel=0.1)
    assert des.step_s < 8 * serial
    # identical micro-batches through stages and sends, each busy with one at a time: the analytic formula is
    # the flow-shop makespan, exact without contention (defect 5: within 5 %; here within round-off)
    assert des.step_s == pytest.approx(analytic.step_s, rel=0.05)
    assert des.step_s == pytest.approx(analytic.step_s, rel=1e-12)


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


# --- the fluid pool always makes progress (issue 11, defects 1 and 16) ---


def test_fluid_pool_finishes_flows_shorter_than_the_clock_resolution():
    # at now = 1e6 s one ulp of the clock is 1.16e-10 s: demands of 1e-13 s cannot move it, yet each wake-up
    # must finish a flow; the flows sharing a link end when the clock (unchanged) says so
    env = simpy.Environment(initial_time=1e6)
    pool = FluidPool(env)
    ends = []

    def flow(demand):
        yield pool.run({"link": demand, "hbm": demand / 2})
        ends.append(env.now)

    for demand in (1e-13, 2e-13, 3e-13, 5e-11):
        env.process(flow(demand))
    with deadline(5):
        env.run()
    assert ends == [1e6] * 4


def test_fluid_pool_on_a_long_prefill_trace_returns():
    # the qwen2-72b 32k prefill that never returned, run op by op on simpy and processor sharing
    r = resolve(Scenario(model="qwen2-72b", hardware="mi300x-node", tp=8, phase="prefill", prompt_len=32768))
    step = estimate_step(r)
    with deadline(30):
        schedule = simulate(tasks_from_stages(stages_of(step.trace, step.costs)))
    assert schedule.makespan_s == pytest.approx(step.analytic_s, rel=1e-12)  # a chain: the sum of its ops


@pytest.mark.parametrize("argv", [
    ("--model", "qwen2-72b", "--hardware", "mi300x-node", "--tp", "8", "--prompt-len", "32768"),
    ("--model", "llama-3-8b", "--hardware", "m2-ultra-cpu", "--prompt-len", "512"),
])
def test_des_prefills_that_hung_return_the_analytic_time(cli, argv):
    with deadline(30):
        result = cli("estimate", *argv, "--phase", "prefill", "--engine", "des", "--format", "json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["step_s"] == out["analytic_step_s"]  # one micro-batch: a chain, the ops one after another


# --- the pipeline formula and the closed-form chains, on made-up stages ---


def _slot(name, seconds, stream="compute", chip=0):
    resource = {"compute": "matrix", "comm": "link:nvlink", "p2p": "link:rail"}[stream]
    return Slot(name, chip, stream, "matrix" if stream == "compute" else None, {f"chip{chip}:{resource}": seconds},
                0.0, resource)


def test_pipeline_formula_by_hand():
    # stage 0: a 2 s layer × 3 → T0 = 6; stage 1: a 1 s send, then a 1 s layer × 4 → T1 = 4; m = 3:
    # Σ (T_s + send_s) + (m − 1)·max(T0, send0, T1, send1) = (6 + 0) + (4 + 1) + 2·6 = 23
    stages = [Stage((0,), None, (Block((_slot("a", 2.0),), 3),)),
              Stage((1,), _slot("send", 1.0, "p2p", 1), (Block((_slot("b", 1.0, chip=1),), 4),))]
    assert pipeline_s(stages, 3) == 23.0
    # the engine: micro-batch k leaves stage 0 at 6(k + 1), is sent by 6(k + 1) + 1, leaves stage 1 at 6k + 11
    schedule = chain_schedule(stages, 3)
    assert schedule.makespan_s == 23.0
    sends = [(schedule.start_s[t.id], schedule.end_s[t.id]) for t in schedule.tasks if t.name == "send"]
    assert sends == [(6.0, 7.0), (12.0, 13.0), (18.0, 19.0)]
    # stage 0 is the bottleneck: the path runs its three micro-batches, then the last send and stage 1
    assert schedule.critical_path_s() == {"a": 18.0, "send": 1.0, "b": 4.0}


def test_a_trailing_collective_overlaps_the_next_micro_batch():
    # one stage, a layer [c: 1 s compute, x: 2 s all-reduce] × 3, two micro-batches.
    # mb 0: c 0–1, x 1–3, c 3–4, x 4–6, c 6–7, x 7–9; mb 1's first c waits for mb 0's last c (7): 7–8,
    # its first x for mb 0's last x (9): 9–11, then 11–12, 12–14, 14–15, 15–17. Analytic: 2 × 9 = 18.
    stages = [Stage((0,), None, (Block((_slot("c", 1.0), _slot("x", 2.0, "comm")), 3),))]
    schedule = chain_schedule(stages, 2)
    assert schedule.makespan_s == 17.0 and pipeline_s(stages, 2) == 18.0
    timeline = schedule.timeline()
    mb1 = timeline[timeline.micro_batch == 1]
    assert list(zip(mb1.op, mb1.start_s, mb1.end_s, strict=True)) == [
        ("c", 7.0, 8.0), ("x", 9.0, 11.0), ("c", 11.0, 12.0), ("x", 12.0, 14.0), ("c", 14.0, 15.0), ("x", 15.0, 17.0)]
    # path: all of mb 0 (c 3 s, x 6 s), then mb 1 from its first x (x 6 s, c 2 s)
    assert schedule.critical_path_s() == {"c": 5.0, "x": 12.0}
    assert simulate(tasks_from_stages(stages, 2)).makespan_s == 17.0  # simpy, op by op, agrees


def test_critical_path_leaves_a_block_in_its_last_run():
    # a layer [x: 2 s all-reduce, c: 1 s] × 3, two micro-batches: mb 0 ends its last x at 8, its last c at 9;
    # mb 1's first x waits for 8 (8–10), then runs alone to 17. The path: mb 0 up to its last x (x 3 runs,
    # c 2 runs = 8 s), then all of mb 1 (9 s)
    stages = [Stage((0,), None, (Block((_slot("x", 2.0, "comm"), _slot("c", 1.0)), 3),))]
    schedule = chain_schedule(stages, 2)
    assert schedule.makespan_s == 17.0
    assert schedule.critical_path_s() == {"x": 12.0, "c": 5.0}


def test_a_billion_layers_fold_into_one_run_per_op():
    layers = 10**9
    stages = [Stage(tuple(range(8)), None, (Block((_slot("c", 1e-3), _slot("x", 5e-4, "comm")), layers),))]
    with deadline(5):
        schedule = chain_schedule(stages, 2)
    assert len(schedule.tasks) == 8  # per micro-batch: the first layer's two ops, then two runs of 10⁹ − 1
    # mb 1's c waits for mb 0's last c, which ends 0.5 ms before mb 0 does: 2 × 1.5 ms × 10⁹ − 0.5 ms
    assert schedule.makespan_s == pytest.approx(2 * 1.5e-3 * layers - 5e-4, rel=1e-12)
    assert schedule.busiest_resource_s() == pytest.approx(2 * 1e-3 * layers)
    with pytest.raises(PerfsimError, match="rows"):
        schedule.timeline()
    with pytest.raises(PerfsimError, match="--engine analytic"):
        tasks_from_stages(stages, 2)


def test_the_closed_form_equals_simpy_op_by_op_without_contention():
    for scenario in (Scenario(model="llama-2-7b", hardware="dgx-h100", pp=4, devices=4, micro_batches=4, batch=16),
                     Scenario(model="llama-3-70b", hardware="dgx-h100", tp=8, micro_batches=3, batch=24),
                     Scenario(model="mixtral-8x7b", hardware="dgx-h100", tp=2, ep=8, expert_tp=1, batch=8, dp=4,
                              micro_batches=2)):
        step = estimate_step(scenario)
        stages = stages_of(step.trace, step.costs)
        assert not contended(stages)
        folded = chain_schedule(stages, scenario.micro_batches).timeline()
        simulated = simulate(tasks_from_stages(stages, scenario.micro_batches)).timeline()
        assert list(folded.op) == list(simulated.op)
        assert list(folded.start_s) == pytest.approx(list(simulated.start_s), rel=1e-9, abs=1e-15)


def test_a_send_sharing_the_all_reduce_link_is_simulated():
    # tp 2 × pp 4 inside one node: the sends and the all-reduces of a stage use the same NVLink
    r = resolve(Scenario(model="llama-2-7b", hardware="dgx-h100", tp=2, pp=4, micro_batches=4, batch=16))
    step = estimate_step(r, engine="des")
    assert contended(stages_of(step.trace, step.costs))
    assert {t.stream for t in step.schedule.tasks} == {"compute", "comm", "p2p"}
    sends = sum(s.send.seconds for s in stages_of(step.trace, step.costs) if s.send)
    # a send can slow the all-reduces it overlaps by at most its own link time
    assert step.schedule.busiest_resource_s() <= step.step_s <= step.analytic_s + 4 * sends


def test_compute_and_lookups_overlap_on_their_engine_as_in_the_cost_model():
    # a T-MAC op: 2 s of multiply-adds and 3 s of table lookups on the vector units, 1 s of DRAM: alone it takes
    # max(2, 3, 1) = 3 s, its cost's time — not 2 + 3
    cost = OpCost("qkv", 0.0, 0.0, {"compute:int8": 2.0, "lut": 3.0, "memory:dram": 1.0})
    assert demands_of(cost, 0, "vector") == {"chip0:vector": 3.0, "chip0:memory:dram": 1.0}
    r = resolve(Scenario(model="bitnet-b1.58-3b", hardware="m2-ultra-cpu", lut_gemm=True, context=128, cores=1,
                         activation_dtype="fp16"))
    step = estimate_step(r, engine="des")
    assert step.step_s == pytest.approx(sum(c.time_s * t.repeat for c, t in zip(step.costs, step.trace.ops,
                                                                               strict=True)), rel=1e-12)


def test_a_step_is_laid_out_layer_by_layer():
    r = resolve(Scenario(model="llama-2-7b", hardware="dgx-h100", tp=2, devices=2, batch=2))
    timeline = estimate_step(r, engine="des").schedule.timeline()
    ops = list(timeline[timeline.chip == 0].op)
    layer = ["attn_norm", "qkv", "rope", "kv_append", "attention", "o_proj", "tp_all_reduce", "ffn_norm", "ffn_up",
             "ffn_act", "ffn_down", "ffn_all_reduce"]
    assert ops == ["embedding", *layer * 32, "final_norm", "lm_head"]
    assert (timeline.start_s.diff().dropna() >= 0).all()


# --- properties over random scenarios ---

SCENARIOS = st.builds(
    lambda model, degrees, m, phase, batch: Scenario(
        model=model, hardware="dgx-h100", tp=degrees[0], pp=degrees[1], devices=degrees[0] * degrees[1],
        micro_batches=m, phase=phase, batch=batch * m, prompt_len=256, context=1024),
    model=st.sampled_from(["llama-2-7b", "llama-3-8b", "mixtral-8x7b"]),
    degrees=st.sampled_from([(1, 1), (2, 1), (8, 1), (1, 2), (1, 4), (2, 2), (2, 4), (4, 2), (1, 8)]),
    m=st.integers(1, 4), phase=st.sampled_from(["prefill", "decode"]), batch=st.integers(1, 4))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCENARIOS)
def test_des_is_bounded_by_the_analytic_formula_and_the_busiest_resource(scenario):
    step = estimate_step(scenario, engine="des", check_memory=False)
    des, analytic = step.step_s, step.analytic_s
    assert des >= step.schedule.busiest_resource_s() * (1 - 1e-12)
    stages = stages_of(step.trace, step.costs)
    if scenario.micro_batches > 1 and contended(stages):  # sends slow the all-reduces they overlap, ≤ their time
        assert des <= analytic + scenario.micro_batches * sum(s.send.seconds for s in stages if s.send)
    else:  # pp = 1: analytic = m·T ≥ DES; with pp: the flow-shop formula, exact up to round-off
        assert des <= analytic * (1 + 1e-12)


# --- the Gantt ---


def test_gantt_rows_per_chip_role_names_on_wide_bars_time_from_zero():
    tasks = [(0, "qkv_projection", 0.0, 0.9, "compute"), (1, "ar", 0.9, 0.91, "comm"), (2, "send", 0.91, 1.0, "p2p")]
    rows = [{"task": task, "op": op, "chip": chip, "stream": stream, "resource": "x", "micro_batch": 0,
             "start_s": start + (0.0 if chip < 4 else 1.0), "end_s": end + (0.0 if chip < 4 else 1.0),
             "bound": "compute:bf16" if stream == "compute" else "link:nvlink"}
            for task, op, start, end, stream in tasks for chip in range(6) if (chip < 4) != (stream == "p2p")]
    timeline = pd.DataFrame(rows)
    assert chip_roles(timeline) == [((0, 1, 2, 3), "compute"), ((0, 1, 2, 3), "comm"), ((4, 5), "p2p")]
    assert role_label((0, 1, 2, 3), "compute") == "chips 0–3 compute"
    assert role_label((0, 2), "comm") == "chips 0,2 comm" and role_label((5,), "p2p") == "chip 5 p2p"
    fig = gantt(timeline, "test")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["chips 0–3 compute", "chips 0–3 comm", "chips 4–5 p2p"]
    # an axis ≈ 900 px wide over 2 s: qkv_projection (0.9 s ≈ 400 px) and send (90 ms ≈ 40 px) hold their names
    # (6 pt characters ≈ 5.5 px at 110 dpi: 15 and 5 characters with a margin); ar (10 ms ≈ 4.5 px) does not
    assert [t.get_text() for t in ax.texts] == ["qkv_projection", "send"]
    assert ax.get_xlim()[0] == 0 and ax.get_xlabel() == "time [s]"

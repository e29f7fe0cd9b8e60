"""The discrete-event engine on a pim chip: PIM-placed ops on their own stream and engine, the stacks' internal
path shared with the xPU's ops."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfsim.cost import OpCost
from perfsim.engine import simulate, tasks_from_stages
from perfsim.engine.blocks import pipeline_s, stages_of
from perfsim.engine.chains import chain_schedule, contended, schedule_step
from perfsim.engine.export import chip_roles, chrome_trace, gantt
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.models.trace import Trace, TraceOp
from perfsim.ops import Gemm

# x: a GEMM the xPU runs, 2 s of its matrix engine, 1 s on the external path, its bytes 1.5 s on the internal path;
# p: a GEMM the PIM runs, 1 s of PIM compute, 2 s on the internal path. Each takes 2 s alone.
X = OpCost("x", 0.0, 0.0, {"compute:bf16": 2.0, "memory:hbm": 1.0, "memory:pim": 1.5})
P = OpCost("p", 0.0, 0.0, {"pim:bf16": 1.0, "memory:pim": 2.0})


def _trace() -> Trace:
    """One stage on chip 0, one layer [x, p] (made-up costs X and P)."""
    ops = [TraceOp(Gemm(name=name, m=1, n=1, k=1, dtype="bf16"), 0, (0,)) for name in ("x", "p")]
    return Trace(ops, None)


def test_a_pim_op_runs_on_its_own_stream_and_engine():
    stages = stages_of(_trace(), [X, P])
    x, p = stages[0].blocks[0].slots
    assert (x.stream, x.engine, x.demands) == ("compute", "matrix", {"chip0:matrix": 2.0, "chip0:memory:hbm": 1.0,
                                                                      "chip0:memory:pim": 1.5})
    assert (p.stream, p.engine, p.demands) == ("pim", "pim", {"chip0:pim": 1.0, "chip0:memory:pim": 2.0})
    assert contended(stages)  # both streams read through the internal path: simulated, not in closed form


def test_a_pim_op_overlaps_the_next_micro_batchs_xpu_op_sharing_the_internal_path():
    # mb 0: x 0–2 alone, then p 2–…; mb 1's x waits only for mb 0's x (the matrix engine), so it starts at 2 too.
    # From 2 both read memory:pim, each at half of it: x needs max(2, 1, 2·1.5) = 3 s per unit of work, p
    # max(1, 2·2) = 4 s. x ends at 2 + 3 = 5; p has 1 − 3/4 = 1/4 left, alone 1/4 · 2 = 0.5 s → ends 5.5.
    # mb 1's p waits for its x (5) and mb 0's p (5.5): 5.5–7.5. Makespan 7.5: less than the 8 s one unit would
    # take (analytic: m·T = 2 · 4), more than the 6 s without the shared internal path, and ≥ the busiest
    # resource, memory:pim: 2 · (1.5 + 2) = 7 s.
    trace = _trace()
    schedule = schedule_step(trace, [X, P], micro_batches=2)
    timeline = schedule.timeline()
    rows = list(zip(timeline.op, timeline.micro_batch, timeline.stream, timeline.resource, timeline.start_s,
                    timeline.end_s, strict=True))
    assert rows == [("x", 0, "compute", "matrix", 0.0, 2.0), ("p", 0, "pim", "pim", 2.0, 5.5),
                    ("x", 1, "compute", "matrix", 2.0, 5.0), ("p", 1, "pim", "pim", 5.5, 7.5)]
    assert schedule.makespan_s == 7.5
    assert pipeline_s(stages_of(trace, [X, P]), 2) == 8.0
    assert schedule.busiest_resource_s() == 7.0
    # the path: mb 0's x, its p (which mb 1's p waited for), mb 1's p
    assert schedule.critical_path_s() == {"x": 2.0, "p": 5.5}


def test_one_micro_batch_on_a_pim_chip_is_a_chain():
    # x then p, each alone: 2 + 2 = 4 s in closed form and on simpy
    stages = stages_of(_trace(), [X, P])
    assert chain_schedule(stages, 1).makespan_s == 4.0
    assert simulate(tasks_from_stages(stages, 1)).makespan_s == 4.0


def test_exports_show_the_pim_stream():
    timeline = schedule_step(_trace(), [X, P], micro_batches=2).timeline()
    assert chip_roles(timeline) == [((0,), "compute"), ((0,), "pim")]
    events = chrome_trace(timeline)["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert threads == {0: "compute", 1: "comm", 2: "p2p", 3: "pim"}
    assert sorted({(e["name"], e["tid"]) for e in events if e["ph"] == "X"}) == [("p", 3), ("x", 0)]
    labels = [t.get_text() for t in gantt(timeline, "pim").axes[0].get_yticklabels()]
    assert labels == ["chip 0 compute", "chip 0 pim"]


def test_a_pipelined_duplex_step_is_bounded_by_the_analytic_formula_and_the_busiest_resource():
    r = resolve(Scenario(model="llama-3-8b", hardware="duplex-logic-pim", pp=2, devices=2, micro_batches=4,
                         batch=8, phase="decode", context=1024))
    assert (r.chip.kind, r.par.devices, r.par.pp, r.par.tp, r.par.dp) == ("pim", 2, 2, 1, 1)
    step = estimate_step(r, engine="des")
    stages = stages_of(step.trace, step.costs)
    assert contended(stages)
    streams = {t.stream for t in step.schedule.tasks}
    assert streams == {"compute", "pim", "p2p"}
    sends = sum(s.send.seconds for s in stages if s.send)
    # a send slows what it overlaps by at most its own time (the engine's property for contended steps)
    assert step.schedule.busiest_resource_s() <= step.step_s <= step.analytic_s + 4 * sends
    # a PIM op of micro-batch k runs while an xPU op of micro-batch k + 1 does, on the same chip
    timeline = step.schedule.timeline()
    pim = timeline[timeline.stream == "pim"]
    xpu = timeline[timeline.stream == "compute"]
    overlaps = pim.merge(xpu, on="chip", suffixes=("_p", "_x"))
    overlaps = overlaps[(overlaps.micro_batch_x == overlaps.micro_batch_p + 1)
                        & (overlaps.start_s_x < overlaps.end_s_p) & (overlaps.start_s_p < overlaps.end_s_x)]
    assert len(overlaps) > 0


def test_a_duplex_step_of_one_micro_batch_equals_the_analytic_estimate():
    r = resolve(Scenario(model="llama-3-8b", hardware="duplex-logic-pim", pp=2, devices=2, batch=8,
                         phase="decode", context=1024))
    assert estimate_step(r, engine="des").step_s == pytest.approx(estimate_step(r).step_s, rel=1e-12)


DUPLEX = st.builds(
    lambda model, pp, m, phase, batch: Scenario(
        model=model, hardware="duplex-logic-pim", pp=pp, devices=pp, micro_batches=m, phase=phase, batch=batch * m,
        prompt_len=256, context=1024),
    model=st.sampled_from(["llama-3-8b", "mixtral-8x7b"]), pp=st.sampled_from([1, 2]), m=st.integers(1, 4),
    phase=st.sampled_from(["prefill", "decode"]), batch=st.integers(1, 8))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DUPLEX)
def test_duplex_des_is_bounded_by_the_analytic_formula_and_the_busiest_resource(scenario):
    step = estimate_step(scenario, engine="des", check_memory=False)
    sends = sum(s.send.seconds for s in stages_of(step.trace, step.costs) if s.send)
    assert step.schedule.busiest_resource_s() * (1 - 1e-12) <= step.step_s
    assert step.step_s <= (step.analytic_s + scenario.micro_batches * sends) * (1 + 1e-12)

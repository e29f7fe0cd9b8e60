"""The step estimate: every op of the trace costed, then added up (analytic) or simulated (des).

analytic: a stage's ops one after another (T_s for one micro-batch), micro-batches pipelined
through the stages and the sends between them: step_s = Σ_s (T_s + send_s) + (m − 1)·max_s
max(T_s, send_s). des: the discrete-event engine runs the same ops with contention and
overlap; step_s is its makespan. Prefill: ttft_s = step_s and tokens/s counts prompt tokens.
Decode: each sequence gains E tokens per step — 1, or with speculative verification of k =
decode_tokens tokens (draft + 1) each draft token accepted with probability α, E = (1 − α^k) /
(1 − α) in expectation (Leviathan et al., 2023) — and tpot_s = step_s / E.
A framework preset (perfsim.frameworks) adds its per-step overhead: step_s = (analytic or des) + host_s (+
graph_launch_s where the step is graph-captured), and in a captured step each accelerator op's launches become
graph nodes before the ops are added up or simulated: overhead_s → overhead_s / launch_s · graph_node_s (an op of
n kernels, overhead n · launch_s, pays n · graph_node_s).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Literal

from perfsim.cost import Cache, OpCost, cost, with_energy
from perfsim.cost.derating import launch_s
from perfsim.cost.energy import average_power_w, joules_per_token, step_energy, waiting_power_w
from perfsim.engine.blocks import pipeline_s, stages_of
from perfsim.engine.chains import schedule_step
from perfsim.engine.simulate import Schedule
from perfsim.frameworks import Framework, preset
from perfsim.hardware import Device, System
from perfsim.models.footprint import Footprint, check_fits, footprint
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.models.trace import Trace, TraceOp, build_trace
from perfsim.ops import Collective

Engine = Literal["analytic", "des"]


@dataclass(frozen=True)
class StepEstimate:
    resolved: Resolved
    trace: Trace
    costs: list[OpCost]
    memory: Footprint
    schedule: Schedule | None = None

    @property
    def analytic_s(self) -> float:
        """Each stage's ops one after another, micro-batches pipelined through stages and sends (module doc)."""
        return pipeline_s(stages_of(self.trace, self.costs), self.resolved.scenario.micro_batches)

    @property
    def framework_overhead_s(self) -> float:
        """Seconds the scenario's framework preset adds once per step (0 without one)."""
        s = self.resolved.scenario
        return preset(s.framework).step_overhead_s(s.phase, self.resolved.chip.kind) if s.framework else 0.0

    @property
    def step_s(self) -> float:
        return (self.schedule.makespan_s if self.schedule else self.analytic_s) + self.framework_overhead_s

    @property
    def tokens_per_sequence(self) -> float:
        """Tokens each sequence gains in the step: its prompt (prefill), or E accepted tokens (decode)."""
        s = self.resolved.scenario
        if s.phase == "prefill":
            return s.prompt_len
        alpha, k = s.acceptance, s.decode_tokens
        return float(k) if alpha == 1 else (1 - alpha**k) / (1 - alpha)

    @property
    def tokens(self) -> float:
        return self.resolved.scenario.batch * self.tokens_per_sequence

    def by_resource(self) -> dict[str, float]:
        """Seconds each op's binding resource accounts for over the step, and the framework's per-step host and
        graph-launch seconds as `framework` (where a preset adds any)."""
        seconds: dict[str, float] = defaultdict(float)
        for c, t in zip(self.costs, self.trace.ops, strict=True):
            seconds[c.bound] += c.time_s * t.repeat
        if self.framework_overhead_s:
            seconds["framework"] = self.framework_overhead_s
        return dict(seconds)

    @property
    def bound(self) -> str:
        return max(self.by_resource().items(), key=lambda item: item[1])[0]

    def breakdown(self) -> list[dict[str, object]]:
        """Per op name: total time over the step, FLOPs, bytes and the resource binding it most."""
        rows: dict[str, dict] = {}
        for c, t in zip(self.costs, self.trace.ops, strict=True):
            row = rows.setdefault(c.op, {"op": c.op, "time_s": 0.0, "flops": 0.0, "bytes": 0.0, "count": 0,
                                         "_bound": defaultdict(float)})
            row["time_s"] += c.time_s * t.repeat
            row["flops"] += c.flops * t.repeat
            row["bytes"] += c.bytes * t.repeat
            row["count"] += t.repeat
            row["_bound"][c.bound] += c.time_s * t.repeat
        return [{**{k: v for k, v in row.items() if k != "_bound"},
                 "bound": max(row["_bound"].items(), key=lambda item: item[1])[0]} for row in rows.values()]

    @property
    def energy_j(self) -> float | None:
        """Joules of the step on all its chips (chips waiting draw their idle power); None when unknown."""
        r = self.resolved
        runs = [(c, t.repeat * r.scenario.micro_batches, len(t.chips))
                for c, t in zip(self.costs, self.trace.ops, strict=True)]
        return step_energy(runs, r.par.devices, self.step_s, waiting_power_w(r.chip))

    def summary(self) -> dict[str, object]:
        r, s = self.resolved, self.resolved.scenario
        step = self.step_s
        tokens_per_s = self.tokens / step
        energy = self.energy_j
        return {
            "model": r.model.name,
            "hardware": r.system.name if r.system else r.chip.name,
            "devices": r.par.devices,
            "parallelism": {k: getattr(r.par, k) for k in ("tp", "pp", "dp", "ep", "expert_tp")},
            "engine": "des" if self.schedule else "analytic",
            "framework": s.framework,
            "framework_overhead_s": self.framework_overhead_s,
            "phase": s.phase,
            "batch": s.batch,
            "step_s": step,
            "ttft_s": step if s.phase == "prefill" else None,
            "tpot_s": step / self.tokens_per_sequence if s.phase == "decode" else None,
            "tokens_per_s": tokens_per_s,
            "tokens_per_s_per_device": tokens_per_s / r.par.devices,
            "energy_j": energy,
            "joules_per_token": joules_per_token(energy, self.tokens),
            "average_power_w": average_power_w(energy, step),
            "memory_bytes_per_device": self.memory.total_bytes,
            "memory": {"weights_bytes": self.memory.weights_bytes, "kv_bytes": self.memory.kv_bytes,
                       "activation_bytes": self.memory.activation_bytes, "capacity_bytes": self.memory.capacity_bytes},
            "bound": self.bound,
            "breakdown": self.breakdown(),
            **(self._des_summary() if self.schedule else {}),
        }

    def _des_summary(self) -> dict[str, object]:
        """Utilisation per resource, the busiest resource's seconds, and critical-path seconds per op."""
        schedule = self.schedule
        assert schedule is not None
        return {"analytic_step_s": self.analytic_s, "busiest_resource_s": schedule.busiest_resource_s(),
                "utilisation": schedule.utilisation(), "critical_path_s": schedule.critical_path_s()}


def estimate_step(scenario: Scenario | Resolved, cache: Cache = "cold", hardware: Device | System | None = None,
                  engine: Engine = "analytic", check_memory: bool = True) -> StepEstimate:
    """Estimate one step; Raise PerfsimError if the scenario is inconsistent or (checked) does not fit.

    `hardware` overrides the spec the scenario names (e.g. a spec at one end of its ranges).
    """
    r = scenario if isinstance(scenario, Resolved) else resolve(scenario, hardware)
    framework = preset(r.scenario.framework) if r.scenario.framework else None
    memory = footprint(r)
    if check_memory:
        check_fits(r, memory)
    trace = build_trace(r)
    if r.chip.kind == "wafer_mesh" and r.system is None:  # layers placed over regions of the wafer
        from perfsim.cost.wafer_plan import plan_wafer, step_costs

        plan = plan_wafer(r, r.scenario.wafer_region, r.scenario.kv_placement or "shift")
        costs = [with_energy(t.op, c, r.chip) for t, c in zip(trace.ops, step_costs(r, plan, trace), strict=True)]
    else:
        costs = [cost(t.op, r.system or r.chip, cache) for t in trace.ops]
    if framework:
        costs = framework.launched([t.op.label for t in trace.ops], costs, r.chip.kind)
        costs = graph_launched(framework, r, trace.ops, costs)
    schedule = schedule_step(trace, costs, r.scenario.micro_batches) if engine == "des" else None
    return StepEstimate(r, trace, costs, memory, schedule)


def graph_launched(framework: Framework, r: Resolved, ops: list[TraceOp], costs: list[OpCost]) -> list[OpCost]:
    """`costs` with each accelerator op's kernel launches (overhead_s = kernels · launch_s) replaced by as many
    graph nodes where `framework` captures the scenario's phase (collectives keep their latency); else unchanged."""
    if not framework.captures(r.scenario.phase, r.chip.kind):
        return costs
    node_per_launch = framework.graph_node_s / launch_s(r.chip)
    return [c if isinstance(t.op, Collective) else replace(c, overhead_s=c.overhead_s * node_per_launch)
            for t, c in zip(ops, costs, strict=True)]

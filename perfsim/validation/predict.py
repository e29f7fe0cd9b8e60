"""Predicting a case: the workload estimated on the case's hardware, and on both ends of its ranges."""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost import bus_bandwidth, cost
from perfsim.cost.collectives import links_used
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware
from perfsim.hardware.ranges import at_end, has_ranges
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.ops import Collective, parse_op
from perfsim.specfile import validate
from perfsim.validation.case import Case, Workload


@dataclass(frozen=True)
class Prediction:
    """`value` with the nominal spec; `low`/`high` over the spec's ranges (equal to `value` without ranges)."""

    value: float
    low: float
    high: float
    bound: str


SCENARIO_METRICS = ("latency_s", "ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_device", "speedup")


def check_inputs(case: Case) -> None:
    """Raise PerfsimError if the case's hardware, op strings or scenarios are bad (before predicting anything)."""
    hardware = load_hardware(case.hardware)
    for workload in (case.workload, case.versus):
        if workload is None:
            continue
        if workload.op is not None:
            parse_op(workload.op)
            continue
        if case.metric not in SCENARIO_METRICS:
            raise PerfsimError(f"metric {case.metric} does not apply to a scenario")
        resolve(validate(Scenario, {**(workload.scenario or {}), "hardware": case.hardware}, "scenario"), hardware)


def predict(case: Case) -> Prediction:
    """Predict `case.metric`. Raise PerfsimError if the case's inputs are bad."""
    hardware = load_hardware(case.hardware)
    ends = [hardware, at_end(hardware, "low"), at_end(hardware, "high")] if has_ranges(hardware) else [hardware]
    values = [_metric(case, spec) for spec in ends]
    numbers = [v for v, _ in values]
    return Prediction(numbers[0], min(numbers), max(numbers), values[0][1])


def _metric(case: Case, hardware: Device | System) -> tuple[float, str]:
    if case.metric == "speedup":
        assert case.versus is not None
        base, bound = _time(case.versus, hardware, case)
        time, _ = _time(case.workload, hardware, case)
        return base / time, bound
    if case.workload.op is not None:
        return _op_metric(case, hardware)
    if case.metric not in SCENARIO_METRICS:
        raise PerfsimError(f"case {case.id}: metric {case.metric} does not apply to a scenario")
    step = estimate_step(_scenario(case.workload, case), case.workload.cache, hardware)
    summary = step.summary()
    key = {"latency_s": "step_s"}.get(case.metric, case.metric)
    value = summary[key]
    if value is None:
        phase = "prefill" if key == "ttft_s" else "decode"
        raise PerfsimError(f"case {case.id}: {case.metric} needs the {phase} phase")
    return float(value), step.bound


def _scenario(workload: Workload, case: Case) -> Scenario:
    return validate(Scenario, {**(workload.scenario or {}), "hardware": case.hardware}, f"case {case.id}: scenario")


def _time(workload: Workload, hardware: Device | System, case: Case) -> tuple[float, str]:
    if workload.op is not None:
        c = cost(parse_op(workload.op), hardware, workload.cache)
        return c.time_s, c.bound
    step = estimate_step(_scenario(workload, case), workload.cache, hardware)
    return step.step_s, step.bound


def _op_metric(case: Case, hardware: Device | System) -> tuple[float, str]:
    op = parse_op(case.workload.op or "")
    c = cost(op, hardware, case.workload.cache)
    chip = hardware.device if isinstance(hardware, System) else hardware
    if case.metric == "latency_s":
        return c.time_s, c.bound
    if case.metric == "flops_per_s":
        return op.flops / c.time_s, c.bound
    if case.metric == "memory_bandwidth_bytes_per_s":
        return op.bytes / c.time_s, c.bound
    if case.metric == "intensity_flop_per_byte":
        return op.intensity, c.bound
    if case.metric == "mac_per_cycle":
        return op.flops / 2 / c.time_s / chip.clock.peak, c.bound
    if isinstance(op, Collective) and isinstance(hardware, System):
        if case.metric == "bus_bandwidth_bytes_per_s":
            return bus_bandwidth(op, hardware, c.time_s), c.bound
        if case.metric == "link_bandwidth_bytes_per_s":
            n = op.group or hardware.chips
            link = hardware.interconnects[0][0]
            return bus_bandwidth(op, hardware, c.time_s) / links_used(link, n), c.bound
    raise PerfsimError(f"case {case.id}: metric {case.metric} does not apply to op '{case.workload.op}'")


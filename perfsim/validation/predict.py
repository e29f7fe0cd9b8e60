"""Predicting a case: each measure of it on its hardware, at both ends of the spec's ranges, and their ratio.

An op workload is a sequence of one op. A sequence runs its ops one after the other: time = Σ op times;
on a system each op runs on every chip (each its own shard, as under tensor parallelism) and a
collective on its group, so energy = Σ chips × joules per chip, plus the idle power of chips a
collective leaves waiting (perfsim.cost.energy.step_energy). A frame (energy_per_frame_j) is one
sequence of a batch: energy / the op's `batch` (the largest among a sequence's ops; 1 if none), or
/ the scenario's batch for a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from perfsim.cost import bus_bandwidth, cost
from perfsim.cost.collectives import links_used
from perfsim.cost.energy import step_energy, waiting_power_w
from perfsim.cost.roofline import level_capacity
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, MemoryLevel, System, load_hardware
from perfsim.hardware.ranges import at_end, has_ranges
from perfsim.models.footprint import footprint
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.ops import Collective, OpBase, parse_op
from perfsim.specfile import validate
from perfsim.validation.case import Case, Measure


@dataclass(frozen=True)
class Value:
    """One measure on one spec: the number (a verdict for `fits`), the binding resource, and for `fits` the peak
    working set per chip and the capacity it must fit (bytes)."""

    number: float | bool
    bound: str
    peak_bytes: float | None = None
    capacity_bytes: float | None = None


@dataclass(frozen=True)
class Prediction:
    """`value` with the nominal spec; `low`/`high` over the spec's ranges (equal to `value` without ranges)."""

    value: float | bool
    low: float | bool
    high: float | bool
    bound: str
    peak_bytes: float | None = None
    capacity_bytes: float | None = None


def check_inputs(case: Case) -> None:
    """Raise PerfsimError if the case's hardware, op strings or scenarios are bad (before predicting anything)."""
    for measure in case.measures():
        hardware = load_hardware(measure.hardware)
        for text in measure.workload.op_texts:
            parse_op(text)
        if measure.workload.memory_level is not None:
            _level(hardware.device, measure.workload.memory_level)
        if measure.workload.scenario is not None:
            resolve(_scenario(measure), hardware)
        if measure.workload.train is not None:
            _train_config(measure)


def predict(case: Case) -> Prediction:
    """Predict `case.metric`. Raise PerfsimError if the case's inputs are bad or the model cannot tell."""
    measures = case.measures()
    if len(measures) == 1:
        values = [measure_value(measures[0], spec) for spec in _ends(measures[0])]
        numbers = [v.number for v in values]
        first = values[0]
        return Prediction(first.number, min(numbers), max(numbers), first.bound, first.peak_bytes,
                          first.capacity_bytes)
    numerator, denominator = measures
    if numerator.hardware == denominator.hardware:  # one spec: both sides at the same end of its ranges
        pairs = [(measure_value(numerator, s), measure_value(denominator, s)) for s in _ends(numerator)]
    else:  # two specs: their ranges are independent
        pairs = list(product([measure_value(numerator, s) for s in _ends(numerator)],
                             [measure_value(denominator, s) for s in _ends(denominator)]))
    ratios = [_quotient(n, d) for n, d in pairs]
    return Prediction(ratios[0], min(ratios), max(ratios), pairs[0][0].bound)


def _quotient(numerator: Value, denominator: Value) -> float:
    if not denominator.number:
        raise PerfsimError("the denominator's prediction is 0; the ratio is undefined")
    return float(numerator.number) / float(denominator.number)


def _ends(measure: Measure) -> list[Device | System]:
    """The nominal spec, then its low and high ends where it holds ranges (a serving run: nominal only, as the
    simulation loads its hardware by name)."""
    hardware = load_hardware(measure.hardware)
    if measure.serve is not None or measure.workload.train is not None or not has_ranges(hardware):
        return [hardware]
    return [hardware, at_end(hardware, "low"), at_end(hardware, "high")]


def measure_value(measure: Measure, hardware: Device | System) -> Value:
    """`measure.metric` of its workload on `hardware`. Raise PerfsimError if it does not apply or is unknown."""
    workload = measure.workload
    if workload.train is not None:
        return _train_value(measure)
    if workload.scenario is None:
        return _ops_value(measure, [parse_op(text) for text in workload.op_texts], hardware)
    scenario = _scenario(measure)
    if measure.serve is not None:
        from perfsim.validation.serving import served_value  # the serving run imports matplotlib: only when used

        value, bound = served_value(scenario, measure.serve, measure.metric)
        return Value(_known(value, measure.metric, hardware.device), bound)
    return _step_value(measure, scenario, hardware)


def _train_config(measure: Measure):
    from perfsim.training.config import TrainConfig

    return validate(TrainConfig, {**(measure.workload.train or {}), "hardware": measure.hardware}, "train")


def _train_value(measure: Measure) -> Value:
    """A training step's MFU, or its tokens/s (perfsim.training.step), on the hardware the case names."""
    from perfsim.training.step import estimate_training

    step = estimate_training(_train_config(measure))
    return Value(step.mfu if measure.metric == "mfu" else step.tokens_per_s, step.bound)


def _scenario(measure: Measure) -> Scenario:
    return validate(Scenario, {**(measure.workload.scenario or {}), "hardware": measure.hardware}, "scenario")


def _step_value(measure: Measure, scenario: Scenario, hardware: Device | System) -> Value:
    metric = measure.metric
    if scenario.offload is not None or metric == "saturation_tokens":
        return _offload_value(measure, scenario, hardware)
    if metric == "fits":
        r = resolve(scenario, hardware)
        memory = footprint(r)
        return Value(memory.fits, f"memory:{r.chip.main.name}", memory.total_bytes, memory.capacity_bytes)
    step = estimate_step(scenario, measure.workload.cache, hardware)
    summary = step.summary()
    if metric == "energy_per_frame_j":
        energy = _known(summary["energy_j"], metric, step.resolved.chip)
        return Value(energy / scenario.batch, step.bound)
    value = summary[{"latency_s": "step_s"}.get(metric, metric)]
    if value is None and metric in ("ttft_s", "tpot_s"):
        raise PerfsimError(f"{metric} needs the {'prefill' if metric == 'ttft_s' else 'decode'} phase")
    return Value(_known(value, metric, step.resolved.chip), step.bound)


OFFLOAD_METRICS = ("saturation_tokens", "tokens_per_s", "latency_s")


def _offload_value(measure: Measure, scenario: Scenario, hardware: Device | System) -> Value:
    """A metric of an offloaded scenario (perfsim.offload): Eq. 2's saturation tokens with the bound's binding
    resource, or the simulated iteration's tokens/s or seconds with the simulation's."""
    from perfsim.offload.estimate import estimate_offload

    metric = measure.metric
    if scenario.offload is None:
        raise PerfsimError(f"metric {metric} needs an offloaded scenario (offload: moe-lens, a system with a host)")
    if metric not in OFFLOAD_METRICS:
        raise PerfsimError(f"metric {metric} does not apply to an offloaded scenario (it measures "
                           f"{', '.join(OFFLOAD_METRICS)})")
    e = estimate_offload(scenario, hardware, measure.workload.cache, simulate=metric != "saturation_tokens")
    if metric == "saturation_tokens":
        if e.saturation_tokens is None:
            raise PerfsimError(f"{scenario.model} has no MoE layer: saturation tokens are an expert layer's")
        return Value(e.saturation_tokens, e.bound.bound)
    sim = e.simulated
    assert sim is not None
    return Value(sim.tokens_per_s if metric == "tokens_per_s" else sim.iteration_s, sim.bound)


def _known(value: object, metric: str, chip: Device) -> float:
    """`value` as a float; Raise PerfsimError when the model left it unknown (energy without the numbers)."""
    if value is None:
        raise PerfsimError(f"{metric} is unknown on {chip.name}: {unknown_energy(chip)}")
    return float(value)  # type: ignore[arg-type]


def unknown_energy(chip: Device) -> str:
    """Why perfsim.cost.energy leaves `chip`'s energy unknown."""
    if chip.energy is not None:
        return "its per-op energies do not price every count (a dtype, level or link) and it has no power model"
    if chip.power is not None:
        return "its power model has no idle power, which a waiting chip needs"
    return "its spec gives neither per-op energies nor power"


def _ops_value(measure: Measure, ops: list[OpBase], hardware: Device | System) -> Value:
    """A metric of ops run in order on one chip, or on every chip of a system (module doc)."""
    metric, chip = measure.metric, hardware.device
    if metric == "fits":  # each op's operands resident at once; the largest op sets the peak
        level = _level(chip, measure.workload.memory_level)
        peak = max(sum(o.bytes for o in op.operands()) for op in ops)
        capacity = level_capacity(chip, level)
        return Value(peak <= capacity, f"memory:{level.name}", peak, capacity)
    costs = [cost(op, hardware, measure.workload.cache) for op in ops]
    seconds = sum(c.time_s for c in costs)
    bound = max(costs, key=lambda c: c.time_s).bound
    flops, moved = sum(op.flops for op in ops), sum(op.bytes for op in ops)
    if metric == "latency_s":
        return Value(seconds, bound)
    if metric == "flops_per_s":
        return Value(flops / seconds, bound)
    if metric == "memory_bandwidth_bytes_per_s":
        return Value(moved / seconds, bound)
    if metric == "intensity_flop_per_byte":
        return Value(flops / moved, bound)
    if metric == "mac_per_cycle":
        return Value(flops / 2 / seconds / chip.clock.peak, bound)
    if metric in ("energy_j", "energy_per_frame_j", "average_power_w"):
        energy = _known(_ops_energy(ops, costs, hardware, seconds), metric, chip)
        frames = max(getattr(op, "batch", 1) for op in ops)
        return Value({"energy_j": energy, "energy_per_frame_j": energy / frames,
                      "average_power_w": energy / seconds}[metric], bound)
    op = ops[0]
    if isinstance(op, Collective) and isinstance(hardware, System):
        busbw = bus_bandwidth(op, hardware, costs[0].time_s)
        if metric == "bus_bandwidth_bytes_per_s":
            return Value(busbw, bound)
        link = hardware.interconnects[0][0]
        return Value(busbw / links_used(link, op.group or hardware.chips), bound)
    raise PerfsimError(f"metric {metric} does not apply to op '{measure.workload.op}'")


def _level(chip: Device, name: str | None) -> MemoryLevel:
    """The memory level `name` of `chip` (default: its main memory); Raise PerfsimError if it has none so named."""
    if name is None:
        return chip.main
    try:
        return chip.level(name)
    except KeyError:
        levels = ", ".join(level.name for level in chip.memory)
        raise PerfsimError(f"workload.memory_level: {chip.name} has no level '{name}' (levels: {levels})") from None


def _ops_energy(ops: list[OpBase], costs: list, hardware: Device | System, seconds: float) -> float | None:
    """Joules of the sequence on all the chips of `hardware`; None when unknown."""
    chips = hardware.chips
    runs = [(c, 1, (op.group or chips) if isinstance(op, Collective) else chips) for op, c in zip(ops, costs,
                                                                                                   strict=True)]
    return step_energy(runs, chips, seconds, waiting_power_w(hardware.device))

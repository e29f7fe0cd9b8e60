"""The explorer's view-model: the page's inputs → one perfsim.api call per device → the payload the page draws.

Every number on the page comes from that payload and the payload from the API results alone: the step (or op)
result of each device, and the roofline drawn from those same results (api.roofline(step=...) plots their
costs, it does not cost them again). explore() is memoised by its inputs, so a repeated input costs nothing.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections import defaultdict
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from perfsim import api
from perfsim.errors import PerfsimError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from perfsim.hardware import Device, System

CACHE_SIZE = 32  # input sets remembered; a payload with two devices' SVGs is about 1 MB
HEAD_FIELDS = ("hardware", "devices", "engine", "phase", "batch", "step_s", "ttft_s", "tpot_s", "tokens_per_s",
               "energy_j", "joules_per_token", "average_power_w", "memory_bytes_per_device", "bound")
"""The step summary fields the page shows for each device (StepResult.summary keys)."""


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the page asks: a model step (`model`) or one op (`op`, which wins when given) on `hardware` and,
    when given, `compare`. The step fields are Scenario fields; None leaves the Scenario's default."""

    hardware: str = "h100-sxm"
    compare: str | None = None
    model: str | None = "llama-3-8b"
    op: str | None = None
    phase: Literal["prefill", "decode"] = "decode"
    batch: int = 1
    prompt_len: int = 512
    context: int | None = None
    weight_dtype: str | None = None
    activation_dtype: str = "bf16"
    kv_dtype: str | None = None
    devices: int | None = None
    tp: int = 1
    pp: int = 1
    ep: int | None = None
    engine: Literal["des", "analytic"] = "des"

    @property
    def hardware_refs(self) -> list[str]:
        return [self.hardware] if self.compare is None else [self.hardware, self.compare]

    def scenario_fields(self) -> dict[str, Any]:
        """The Scenario fields of a model step (None: the Scenario's default)."""
        names = ("phase", "batch", "prompt_len", "context", "weight_dtype", "activation_dtype", "kv_dtype",
                 "devices", "tp", "pp", "ep")
        return {name: getattr(self, name) for name in names}


CHOICES = {"phase": ("prefill", "decode"), "engine": ("des", "analytic")}
WHOLE_NUMBERS = ("batch", "prompt_len", "context", "devices", "tp", "pp", "ep")


def inputs_from_query(query: dict[str, str]) -> Inputs:
    """Inputs from the page's query string: blank means the default (but a blank op or model), an op makes the
    model irrelevant (None); raise PerfsimError naming a bad field."""
    names = [f.name for f in dataclasses.fields(Inputs)]
    unknown = sorted(set(query) - set(names))
    if unknown:
        raise PerfsimError(f"unknown input {unknown[0]!r} (inputs: {', '.join(names)})")
    values: dict[str, Any] = {}
    for name, raw in query.items():
        text = raw.strip()
        if not text:
            continue
        if name in CHOICES and text not in CHOICES[name]:
            raise PerfsimError(f"{name}: {text!r} is not one of {', '.join(CHOICES[name])}")
        if name in WHOLE_NUMBERS:
            if not text.isdigit():
                raise PerfsimError(f"{name}: {text!r} is not a whole number")
            api.bounded(name, int(text), 0, api.MAX_SETTING)
            values[name] = int(text)
        else:
            values[name] = text
    if "op" in query:  # the page sends op (and no model) for an op, model (and no op) for a step
        if "op" not in values:
            raise PerfsimError('op: empty; give an op string, e.g. "gemm m=4096 n=4096 k=4096 dtype=bf16"')
        values["model"] = None
    elif "model" in query and "model" not in values:
        raise PerfsimError("model: empty; give a model name or a path to a model YAML file")
    return Inputs(**values)


_lock = threading.Lock()


def explore(inputs: Inputs) -> dict[str, Any]:
    """The page's payload for `inputs` (see _explore); one computation at a time, each input set once."""
    with _lock:
        return _explore(inputs)


@lru_cache(maxsize=CACHE_SIZE)
def _explore(inputs: Inputs) -> dict[str, Any]:
    """`mode` (step or op), one entry per device (head numbers, time and energy per op, memory fit, timeline SVG,
    notes) and the roofline (SVG and its points) of every device's ops from those same results.

    Raise PerfsimError for a bad input (unknown hardware or model, bad op string, a model that does not fit).
    """
    if inputs.op is not None:
        parsed = api.op(inputs.op)  # an op string, never a scenario file (as api.estimate would read a .yaml)
        results: list[api.StepResult | api.OpResult] = [api.estimate(parsed, ref) for ref in inputs.hardware_refs]
        views = [op_view(r) for r in results]  # type: ignore[arg-type]
    else:
        results = [api.step(inputs.model, ref, engine=inputs.engine, **inputs.scenario_fields())
                   for ref in inputs.hardware_refs]
        views = [step_view(r) for r in results]  # type: ignore[arg-type]
    specs = [spec_of(r) for r in results]
    roof = api.roofline(specs[0], compare=specs[1:], step=results)
    return {"inputs": dataclasses.asdict(inputs), "mode": "op" if inputs.op is not None else "step",
            "devices": views, "roofline": {"svg": svg(roof.figure), "points": roof.points}}


def spec_of(result: api.StepResult | api.OpResult) -> Device | System:
    """The hardware a result ran on (a system for a multi-chip step)."""
    if isinstance(result, api.OpResult):
        return result.hardware
    resolved = result.estimate.resolved
    return resolved.system or resolved.chip


def step_view(step: api.StepResult) -> dict[str, Any]:
    """One device's model step: HEAD_FIELDS, one row per op name (step.records() with its joules), seconds per
    binding resource, the memory per chip against its capacity, and the timeline (engine des)."""
    summary = step.summary
    joules = op_energy_j(step)
    rows = [{**row, "energy_j": joules.get(row["op"])} for row in step.records()]
    memory = {**summary["memory"], "total_bytes": summary["memory_bytes_per_device"]}
    memory["fraction"] = memory["total_bytes"] / memory["capacity_bytes"]
    timeline = svg(step.gantt()) if step.estimate.schedule is not None else None
    return {"head": {name: summary[name] for name in HEAD_FIELDS}, "ops": rows,
            "by_resource_s": step.estimate.by_resource(), "idle_energy_j": idle_energy_j(summary["energy_j"], joules),
            "memory": memory, "timeline_svg": timeline, "notes": step.notes}


def op_energy_j(step: api.StepResult) -> dict[str, float]:
    """Joules of each op name over the step on all the chips running it (the busy part of the step's energy_j:
    each run's joules × runs × chips, as perfsim.cost.energy.step_energy adds them); empty when unknown."""
    estimate = step.estimate
    micro_batches = estimate.resolved.scenario.micro_batches
    joules: dict[str, float] = defaultdict(float)
    for c, t in zip(estimate.costs, estimate.trace.ops, strict=True):
        if c.energy_j is None:
            return {}
        joules[c.op] += c.energy_j * t.repeat * micro_batches * len(t.chips)
    return dict(joules)


def idle_energy_j(total_j: float | None, busy: dict[str, float]) -> float | None:
    """Joules of chips waiting during the step: the step's energy less its ops' (None when unknown)."""
    return total_j - sum(busy.values()) if total_j is not None and busy else None


def op_view(result: api.OpResult) -> dict[str, Any]:
    """One device's op: its summary, seconds per resource; no memory fit or timeline (one op has neither)."""
    summary = result.summary
    head = {"hardware": summary["hardware"], "step_s": summary["time_s"], "energy_j": summary["energy_j"],
            "bound": summary["bound"], "flops": summary["flops"], "bytes": summary["bytes"],
            "intensity_flop_per_byte": summary["intensity_flop_per_byte"]}
    rows = [{"op": summary["op"], "time_s": summary["time_s"], "energy_j": summary["energy_j"],
             "flops": summary["flops"], "bytes": summary["bytes"], "count": 1, "bound": summary["bound"]}]
    return {"head": head, "ops": rows, "by_resource_s": summary["resource_s"], "idle_energy_j": None,
            "memory": None, "timeline_svg": None, "notes": result.notes}


def svg(figure: Figure) -> str:
    """The figure as SVG text."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()

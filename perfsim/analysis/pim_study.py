"""Duplex-style PIM against a GPU: where each op of a step runs, decode throughput and energy vs batch, serving.

`placed_ops` prices a step's ops with the pim cost model directly. The step and serving functions go
through the step estimate (`perfsim.models.step.estimate_step`), whose `cost` sends pim chips to
`perfsim.cost.pim.pim_cost` and accelerators to the accelerator model, so both sides pay launches and
derating. Energy is the dynamic energy of `pim_energy_j`: a pim chip with its own figures, any other chip
with the figures of one pim spec (default duplex-logic-pim), whose external-path energy is that of the same
HBM3 read by a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfsim import api
from perfsim.cost.opcost import OpCost
from perfsim.cost.pim import Placement, pim_cost, pim_energy_j, placement
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, Pim, System
from perfsim.hardware.pim import PimStacks
from perfsim.ops import Collective

if TYPE_CHECKING:
    import pandas as pd

    from perfsim.models.step import StepEstimate

SATURATING_RATE = 1e6  # requests/s: every request arrives at once, so the server is never idle


@dataclass(frozen=True)
class PlacedOp:
    """One distinct op of a step on a pim chip: its cost, where it ran, and how often it runs in the step."""

    label: str
    cost: OpCost
    placement: Placement
    repeat: int


def _chip(hardware: str | Device | System) -> Device:
    spec = api.hardware(hardware)
    return spec.device


def _pim_chip(hardware: str | Device | System) -> Pim:
    chip = _chip(hardware)
    if not isinstance(chip, Pim):
        raise PerfsimError(f"{chip.name} is not a pim chip (kind {chip.kind})")
    return chip


def energy_figures(hardware: str | Device | System = "duplex-logic-pim") -> PimStacks:
    """The energy figures of a pim spec, to charge any device's step with."""
    return _pim_chip(hardware).pim


def placed_ops(model: str, hardware: str | Device | System = "duplex-logic-pim", **fields: Any) -> list[PlacedOp]:
    """Every distinct op of one step of `model` (scenario `fields`: batch, context, tp, ...) placed on a pim chip
    by the pim cost model; collectives are left out (they have no Op/B)."""
    chip = _pim_chip(hardware)
    trace = api.step(model, hardware, **fields).estimate.trace
    placed: dict[str, PlacedOp] = {}
    for t in trace.ops:
        if not isinstance(t.op, Collective):
            seen = placed.get(t.op.label)
            repeat = t.repeat + (seen.repeat if seen else 0)
            placed[t.op.label] = PlacedOp(t.op.label, pim_cost(t.op, chip), placement(t.op, chip), repeat)
    return list(placed.values())


def step_energy_j(step: StepEstimate, figures: PimStacks) -> float:
    """Dynamic energy (J) of a step on all its chips: each op's pim_energy_j × its repeats × its chips."""
    return sum(pim_energy_j(c, figures) * t.repeat * len(t.chips)
               for t, c in zip(step.trace.ops, step.costs, strict=True))


def decode_sweep(model: str, hardware: Iterable[str | Device | System], batches: Iterable[int], context: int,
                 figures: PimStacks | None = None, **fields: Any) -> pd.DataFrame:
    """One decode step per hardware and batch: step_s, tokens_per_s and energy_per_token_j, charged with the
    chip's own energy figures if it is a pim chip, else with `figures` (default: duplex-logic-pim's)."""
    import pandas as pd

    rows = []
    for spec in hardware:
        chip = _chip(spec)
        charged = chip.pim if isinstance(chip, Pim) else figures or energy_figures()
        for batch in batches:
            estimate = api.step(model, spec, phase="decode", batch=batch, context=context, **fields).estimate
            rows.append({"hardware": chip.name, "batch": batch, "context": context, "step_s": estimate.step_s,
                         "tokens_per_s": estimate.tokens / estimate.step_s,
                         "energy_per_token_j": step_energy_j(estimate, charged) / estimate.tokens})
    return pd.DataFrame(rows)


def serving_sweep(model: str, hardware: Iterable[str], batches: Iterable[int],
                  lengths: Iterable[tuple[int, int]], rate: float, requests: int = 200,
                  **fields: Any) -> pd.DataFrame:
    """Continuous batching at `rate` requests/s per hardware, max batch and (prompt, output) lengths:
    throughput_tokens_per_s, requests_per_s and the p50/p99 of ttft_s, tpot_s and e2e_s."""
    import pandas as pd

    rows = []
    for name in hardware:
        for batch in batches:
            for prompt_len, output_len in lengths:
                summary = api.serve(model, name, rate=rate, requests=requests, prompt_len=prompt_len,
                                    output_len=output_len, max_batch=batch, **fields).summary
                row = {"hardware": name, "max_batch": batch, "prompt_len": prompt_len, "output_len": output_len,
                       "rate_requests_per_s": rate, "throughput_tokens_per_s": summary["throughput_tokens_per_s"],
                       "requests_per_s": summary["requests"] / summary["makespan_s"]}
                for metric in ("ttft_s", "tpot_s", "e2e_s"):
                    stem = metric.removesuffix("_s")
                    row.update({f"{stem}_{q}_s": summary[metric][q] for q in ("p50", "p99")})
                rows.append(row)
    return pd.DataFrame(rows)


def max_qps(model: str, hardware: str, prompt_len: int, output_len: int, max_batch: int = 128,
            requests: int = 512, **fields: Any) -> float:
    """Requests/s served when every request is already waiting: the highest rate the server sustains with at
    most `max_batch` sequences at once (finished requests / makespan, ramp-up and drain included)."""
    summary = api.serve(model, hardware, rate=SATURATING_RATE, requests=requests, prompt_len=prompt_len,
                        output_len=output_len, max_batch=max_batch, **fields).summary
    return summary["requests"] / summary["makespan_s"]

"""Pictures of the wafer-scale mesh model: GEMV latency against a GPU, decode speed against region size, and the
PLMR terms of one decode step. Each returns a matplotlib Figure (never shows it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost.wafer_compare import GPU, WAFER, kernel_pair
from perfsim.cost.wafer_plan import wafer_step
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario
from perfsim.models.step import StepEstimate
from perfsim.ops import Gemm

TERMS = (("core share", "#1f77b4"), ("mesh:latency", "#d62728"), ("mesh:routing", "#ff7f0e"))
"""The stacked phases of a mesh op: the core's compute or SRAM (whichever is longer), then latency, then routing."""


def _figure(width: float = 6.4, height: float = 4.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def plot_gemv_latency(sizes: Sequence[int], wafer: str = WAFER, gpu: str = GPU, dtype: str = "fp16") -> Figure:
    """Latency of the square GEMV x[n] @ W[n, n] for each n of `sizes`: MeshGEMV on `wafer` (its fastest
    region) and the accelerator model on `gpu`, log-log, with the speed-up at the largest size."""
    fig, ax = _figure()
    pairs = [kernel_pair(Gemm(m=1, n=n, k=n, dtype=dtype, weight_shared=True), wafer, gpu) for n in sizes]
    ax.plot(sizes, [p.wafer.time_s * 1e6 for p in pairs], "o-", color="#9467bd", label=f"{wafer} (MeshGEMV)")
    ax.plot(sizes, [p.gpu.time_s * 1e6 for p in pairs], "s-", color="#1f77b4", label=gpu)
    ax.set(xscale="log", yscale="log", xlabel="n (x[n] @ W[n, n])", ylabel="latency (µs)",
           title=f"GEMV: {pairs[-1].speedup:.0f}× at n = {sizes[-1]}")
    ax.legend()
    return fig


def plot_decode_vs_region(scenario: dict[str, Any], regions: Sequence[int], wafer: str = WAFER) -> Figure:
    """Decode tokens/s of `scenario` (Scenario fields without `hardware`) with its layers on P×P regions, for each
    P of `regions`; regions where the model does not fit are marked on the axis."""
    fig, ax = _figure()
    fitted, speed, misfit = [], [], []
    for p in regions:
        try:
            step = wafer_step(Scenario(**scenario, hardware=wafer), region=p)
        except PerfsimError:
            misfit.append(p)
            continue
        fitted.append(p)
        speed.append(step.summary()["tokens_per_s"])
    ax.plot(fitted, speed, "o-", color="#9467bd")
    if misfit:
        ax.plot(misfit, [0] * len(misfit), "x", color="0.4", label="does not fit")
        ax.legend()
    ax.set(xlabel="region side P (P × P cores a layer runs on)", ylabel="decode tokens/s",
           title=f"{scenario.get('model', '')} decode on {wafer}")
    ax.set_ylim(bottom=0)
    return fig


def plmr_terms(step: StepEstimate) -> list[tuple[str, dict[str, float]]]:
    """(op, {term: seconds over the step}) for every op name of the step, terms as in TERMS."""
    rows: dict[str, dict[str, float]] = {}
    for c, t in zip(step.costs, step.trace.ops, strict=True):
        local = max((s for r, s in c.resource_s.items() if not r.startswith("mesh:")), default=0.0)
        terms = rows.setdefault(c.op, dict.fromkeys((name for name, _ in TERMS), 0.0))
        terms["core share"] += local * t.repeat
        for name in ("mesh:latency", "mesh:routing"):
            terms[name] += c.resource_s.get(name, 0.0) * t.repeat
    return list(rows.items())


def plot_plmr_terms(step: StepEstimate) -> Figure:
    """One step's seconds per op, stacked by PLMR term: the core's share, per-hop and per-message latency, and
    bytes streamed through the routers."""
    fig, ax = _figure(7.2, 4.0)
    rows = plmr_terms(step)
    names = [name for name, _ in rows]
    bottom = [0.0] * len(rows)
    for term, colour in TERMS:
        values = [terms[term] * 1e6 for _, terms in rows]
        ax.bar(names, values, bottom=bottom, color=colour, label=term)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set(ylabel="µs per step", title=f"one step: {step.step_s * 1e6:.0f} µs, bound {step.bound}")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend()
    return fig

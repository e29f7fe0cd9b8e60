"""Throughput against batch tokens for an offloaded scenario: the MoE-Lens ceilings, the bound and the simulation."""

from __future__ import annotations

from collections.abc import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.analysis.palette import PALETTE
from perfsim.offload.bound import ROLES
from perfsim.offload.estimate import OffloadEstimate, sweep

POINTS = 40


def default_batches(e: OffloadEstimate) -> list[int]:
    """Batches from 1 to twice the larger of the host's capacity and the saturating batch, log-spaced."""
    q = e.resolved.q_len
    top = max(e.capacity.sequences, int((e.saturation_tokens or 0) / q) + 1, 2) * 2
    return sorted({max(1, round(top ** (i / (POINTS - 1)))) for i in range(POINTS)})


def plot_bound(e: OffloadEstimate, batches: Iterable[int] | None = None, simulate: Iterable[int] = ()) -> Figure:
    """Each resource's ceiling (tokens/s at peak), their minimum (the bound), the capacity and saturation lines,
    and simulated points at the `simulate` batches that fit."""
    r = e.resolved
    scenario = r.scenario.model_copy(update={"micro_batches": 1})
    rows = sweep(scenario, list(batches or default_batches(e)))
    fits = [b for b in simulate if b <= e.capacity.sequences]
    simulated = sweep(scenario, fits, simulate=True) if fits else []
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = [row["tokens"] for row in rows]
    labels = {"link": "host link", "gpu": "GPU compute", "dram": "host DRAM bandwidth", "cpu": "CPU compute"}
    for colour, (role, name) in zip(PALETTE, zip(ROLES, e.bound.seconds, strict=True), strict=False):
        values = [row[f"{role}_ceiling_tokens_per_s"] for row in rows]
        if any(v is not None for v in values):
            ax.plot(x, [float("nan") if v is None else v for v in values], "--", color=colour, lw=1.2,
                    label=f"{labels[role]} ({name})")
    fitting = [row for row in rows if row["fits"]]
    beyond = fitting[-1:] + [row for row in rows if not row["fits"]]
    for part, style in ((fitting, {"lw": 2.2, "label": "bound (min of ceilings)"}),
                        (beyond, {"lw": 1.0, "ls": ":", "label": "bound, KV cache does not fit"})):
        if len(part) > 1:
            ax.plot([row["tokens"] for row in part], [row["bound_tokens_per_s"] for row in part], color="black",
                    **style)
    if simulated:
        ax.plot([row["tokens"] for row in simulated], [row["simulated_tokens_per_s"] for row in simulated], "o",
                color="#d62728", label="simulated (DES)")
    cap_tokens = e.capacity.sequences * r.q_len
    ax.axvline(cap_tokens, color="grey", lw=1.2)
    ax.annotate(f" {e.capacity.resource}: {e.capacity.sequences:,} seqs", (cap_tokens, 0.02), rotation=90,
                xycoords=("data", "axes fraction"), fontsize=8, color="grey", va="bottom")
    if e.saturation_tokens:
        ax.axvline(e.saturation_tokens, color="grey", lw=1.0, ls=":")
        ax.annotate(f" Eq. 2: GPU saturates at {e.saturation_tokens:,.0f} tokens", (e.saturation_tokens, 0.02),
                    rotation=90, xycoords=("data", "axes fraction"), fontsize=8, color="grey", va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = max(row["bound_tokens_per_s"] for row in rows)
    ax.set_ylim(top / 1e3, top * 20)
    ax.set_xlabel(f"tokens per iteration (batch × {r.q_len}, {r.scenario.phase}, context {r.context})")
    ax.set_ylabel("tokens / s")
    ax.set_title(f"{r.model.name} offloaded on {r.scenario.hardware}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig

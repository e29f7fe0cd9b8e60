"""Expert-parallel load balance against routing skew: plain top-k vs grouped top-k (MoGE).

Each point is perfsim.models.routing.busiest_load: the expected max/mean token-expert pairs per EP rank for one
step of `tokens` tokens under Zipf popularity ∝ 1/rank^S, S on the x axis.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.models.routing import busiest_load


def plot_load_balance(exponents: Sequence[float], experts: int = 64, top_k: int = 8, groups: int = 8, ep: int = 8,
                      tokens: Sequence[int] = (1, 64, 1024)) -> Figure:
    """Busiest EP rank's load over the mean against the Zipf exponent: one plain top-k line per step size in
    `tokens`, and grouped top-k (`groups` groups spread over `ep` ranks)."""
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for count in tokens:
        ax.plot(exponents, [busiest_load(f"zipf:{s}", experts, top_k, 1, ep, count) for s in exponents], "o-",
                label=f"top-{top_k} of {experts}, {count} tokens/step")
    grouped = [busiest_load(f"zipf:{s}", experts, top_k, groups, ep, max(tokens)) for s in exponents]
    ax.plot(exponents, grouped, "s-", color="black", label=f"MoGE: {groups} groups, top-{top_k // groups} each")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("Zipf exponent S (expert popularity ∝ 1/rank^S)")
    ax.set_ylabel(f"busiest of {ep} EP ranks: load / mean")
    ax.set_title("Expert-parallel load balance: top-k vs grouped top-k")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig

"""Pareto fronts of a sweep: throughput per chip against latency, and cost against latency.

A point is on its hardware's front when no other point of that hardware has lower (or equal) latency and
better (or equal) value with one strictly better: higher tokens/s per chip, or lower cost per million tokens.
Points with a `reason` (no result) are left out. Each hardware gets its colour (perfsim.analysis.palette), its
points faint and its front drawn as a line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from perfsim.errors import PerfsimError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Kind = Literal["throughput", "cost"]
VALUES = {"throughput": (("tokens_per_s_per_device", "throughput_tokens_per_s_per_device"), "tokens/s per chip", True),
          "cost": (("cost_per_million_tokens_low_usd",), "US$ per million tokens (low end of the price)", False)}
"""kind → (value columns, first present is used; axis label; whether higher is better)."""


def front(latency: list[float], value: list[float], higher_is_better: bool) -> list[int]:
    """Indices of the Pareto-optimal points, by rising latency: each is better in value than every point
    of lower latency (ties in latency: only the best value)."""
    order = sorted(range(len(latency)), key=lambda i: (latency[i], -value[i] if higher_is_better else value[i]))
    kept: list[int] = []
    for i in order:
        if not kept or (value[i] > value[kept[-1]] if higher_is_better else value[i] < value[kept[-1]]):
            kept.append(i)
    return kept


def pareto_figure(frame: pd.DataFrame, kind: Kind = "throughput", latency: str = "tpot_s") -> Figure:
    """Each hardware's points and Pareto front, `latency` (a column, e.g. tpot_s, ttft_s, tpot_p99_s) on x.

    Raise PerfsimError for an unknown kind or a column the sweep does not have, or no point with a result.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from perfsim.analysis.palette import device_colours

    if kind not in VALUES:
        raise PerfsimError(f"kind: '{kind}' is not one of {', '.join(VALUES)}")
    columns, label, higher = VALUES[kind]
    value = next((c for c in columns if c in frame.columns), None)
    if value is None or latency not in frame.columns:
        raise PerfsimError(f"the sweep has no {latency if value else ' or '.join(columns)} column to plot")
    rows = frame[frame[latency].notna() & frame[value].notna()]
    if rows.empty:
        raise PerfsimError(f"no point of the sweep has both {latency} and {value}")
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = device_colours(rows["hardware"].astype(str))
    for name, group in rows.groupby(rows["hardware"].astype(str)):
        xs, ys = group[latency].astype(float).tolist(), group[value].astype(float).tolist()
        best = front(xs, ys, higher)
        ax.scatter(xs, ys, s=10, color=colours[name], alpha=0.25, linewidths=0)
        ax.plot([xs[i] for i in best], [ys[i] for i in best], "o-", color=colours[name], markersize=4,
                label=f"{name} (front)", drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(latency)
    ax.set_ylabel(label)
    ax.set_title(f"{'Throughput per chip' if kind == 'throughput' else 'Cost'} vs {latency}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig

"""The serving picture: latency CCDFs with p50/p99 marks and SLO lines, and the batch, queue and
KV cache over time. Drawn from at most MAX_POINTS points per series, so a million requests plot
in bounded memory."""

from __future__ import annotations

from array import array
from itertools import pairwise

import numpy as np
from matplotlib.figure import Figure

from perfsim.output import human

MAX_POINTS = 2000  # points per plotted series
COLOURS = {"TTFT": "tab:blue", "TPOT": "tab:orange", "E2E": "tab:green"}


def downsample(times: np.ndarray, values: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points of a time series, keeping each of limit / 2 consecutive slices' minimum
    and maximum (in time order), so spikes and dips survive."""
    if len(values) <= limit:
        return times, values
    edges = np.linspace(0, len(values), limit // 2 + 1).astype(int)
    keep = []
    for low, high in pairwise(edges):
        piece = values[low:high]
        keep += sorted({low + int(piece.argmin()), low + int(piece.argmax())})
    return times[keep], values[keep]


def ccdf(values: array, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(latency, fraction of requests at or above it), latency ascending, at ≤ `limit` ranks dense in
    the tail: the m-th largest value, at fraction m / n, for m on a geometric grid n … 1 (every m while
    n ≤ `limit`). NaNs are dropped."""
    data = np.frombuffer(values, dtype=float)
    data = np.sort(data[~np.isnan(data)])
    n = len(data)
    if not n:
        return data, data
    ranks = np.arange(n, 0, -1) if n <= limit else np.unique(np.rint(np.geomspace(1, n, limit)).astype(int))[::-1]
    return data[n - ranks], ranks / n


def plot_serving(title: str, latencies: dict[str, array], marks: dict[str, dict[str, float | None]],
                 slos: dict[str, float | None], times_s: array, batch_sizes: array, queue_depths: array,
                 kv_tokens: array, kv_capacity_tokens: float) -> Figure:
    """Three panels: latency CCDFs on log-log axes (p50 and p99 marked, SLOs as dashed lines); sequences
    running and waiting over time; KV cache use in % of capacity over time.

    `latencies` and `marks` (p50/p99 in s) are keyed "TTFT", "TPOT", "E2E"; `slos` by "TTFT"/"TPOT".
    """
    fig = Figure(figsize=(15, 4.6), dpi=110)
    tails, sequences, cache = fig.subplots(1, 3)
    fig.suptitle(title)
    _latency_panel(tails, latencies, marks, slos)
    times = np.frombuffer(times_s, dtype=float)
    for name, series in (("running (batch)", batch_sizes), ("waiting (queue)", queue_depths)):
        if len(series):
            sequences.step(*downsample(times, np.asarray(series, dtype=float)), where="pre", lw=0.8, label=name)
    _timeline(sequences, "sequences", "batch and queue over time")
    if len(kv_tokens) and kv_capacity_tokens > 0:
        used = 100 * np.asarray(kv_tokens, dtype=float) / kv_capacity_tokens
        cache.step(*downsample(times, used), where="pre", lw=0.8, color="tab:purple")
        cache.axhline(100, color="black", lw=0.8, ls=":")
    _timeline(cache, f"KV cache use [% of {kv_capacity_tokens:,.0f} tokens]", "KV cache over time")
    fig.tight_layout()
    return fig


def _latency_panel(ax, latencies: dict[str, array], marks: dict[str, dict[str, float | None]],
                   slos: dict[str, float | None]) -> None:
    for row, (name, values) in enumerate(latencies.items()):
        xs, ys = ccdf(values)
        if not len(xs):
            continue
        colour = COLOURS[name]
        ax.step(xs, ys, where="pre", color=colour, lw=1.2, label=name)
        for key, fraction in (("p50", 0.5), ("p99", 0.01)):
            at = marks[name][key]
            if at is not None and at > 0:
                ax.plot([at], [fraction], marker="o", color=colour, ms=5, mec="black", mew=0.5)
                ax.annotate(f"{key} {human(at, 's')}", (at, fraction), xytext=(4, 3 - 9 * row),
                            textcoords="offset points", fontsize=7, color=colour)
        slo = slos.get(name)
        if slo is not None:
            ax.axvline(slo, color=colour, ls="--", lw=1, label=f"{name} SLO {human(slo, 's')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency [s]")
    ax.set_ylabel("fraction of requests ≥ latency")
    ax.set_title("latency CCDF (p50, p99 marked)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)


def _timeline(ax, ylabel: str, title: str) -> None:
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)

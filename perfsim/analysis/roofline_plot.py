"""Roofline plots: log-log, a ceiling per dtype, a diagonal per memory level, ridge points, labelled ops.

In the style of the NERSC Empirical Roofline Toolkit: attainable FLOP/s against
arithmetic intensity (FLOP per byte of the level that serves the op). Ceilings use
the sustained rates the cost model uses; one colour per device with --compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from perfsim.cost import OpCost
from perfsim.cost.roofline import compute_rate, level_bandwidth
from perfsim.hardware import Device
from perfsim.output import human

MAX_DTYPES = 4
LINESTYLES = ("-", "--", "-.", ":")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class PlottedOp:
    """One op to draw: its label and its cost on `device`."""

    label: str
    cost: OpCost
    device: str


def ceilings(device: Device) -> list[tuple[str, float]]:
    """(dtypes, sustained FLOP/s) for the chip's fastest ceilings; dtypes sharing a peak share a line."""
    by_rate: dict[float, list[str]] = {}
    for dtype in device.dtypes:
        used, rate = compute_rate(device, "matrix", dtype)
        if used == dtype:
            by_rate.setdefault(rate, []).append(dtype)
    ranked = sorted(by_rate.items(), key=lambda item: -item[0])
    return [("/".join(dtypes), rate) for rate, dtypes in ranked[:MAX_DTYPES]]


def diagonals(device: Device) -> list[tuple[str, float]]:
    """(level, sustained bytes/s) for every memory level, fastest first."""
    return sorted(((lvl.name, level_bandwidth(device, lvl)) for lvl in device.memory), key=lambda item: -item[1])


def plot_roofline(devices: list[Device], ops: list[PlottedOp]) -> Figure:
    """A roofline Figure for one or more devices with their ops as labelled points."""
    fig = Figure(figsize=(9, 6), dpi=120)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    intensities = [op.cost.intensity for op in ops if np.isfinite(op.cost.intensity) and op.cost.intensity > 0]
    x_lo = min([0.01, *[i / 4 for i in intensities]])
    x_hi = max([1e4, *[i * 4 for i in intensities]])
    xs = np.logspace(np.log10(x_lo), np.log10(x_hi), 256)
    y_values: list[float] = []
    for d_index, device in enumerate(devices):
        colour = COLOURS[d_index % len(COLOURS)]
        tag = f"{device.name}: " if len(devices) > 1 else ""
        top = ceilings(device)
        for c_index, (dtype, peak) in enumerate(top):
            ax.axhline(peak, color=colour, lw=1.2, ls=LINESTYLES[c_index % 4], alpha=0.8)
            ax.annotate(f"{tag}{dtype} {human(peak, 'FLOP/s')}", (x_lo, peak), xytext=(4, 3),
                        textcoords="offset points", ha="left", fontsize=8, color=colour)
            y_values.append(peak)
        best = top[0][1]
        for l_index, (level, bandwidth) in enumerate(diagonals(device)):
            ys = np.minimum(xs * bandwidth, best)
            ax.plot(xs, ys, color=colour, lw=1.8 if l_index == len(device.memory) - 1 else 1.0,
                    alpha=0.9 if level == device.main.name else 0.5, label=f"{tag}{level} {human(bandwidth, 'B/s')}")
            ridge = best / bandwidth
            ax.plot([ridge], [best], marker="o", color=colour, ms=5)
            if level == device.main.name:
                ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, best), xytext=(6, -14),
                            textcoords="offset points", fontsize=8, color=colour)
            y_values.append(x_lo * bandwidth)
    labelled: dict[tuple[str, float, float], list[str]] = {}
    for op in ops:
        colour = COLOURS[[d.name for d in devices].index(op.device) % len(COLOURS)]
        attained = op.cost.flops / op.cost.time_s if op.cost.time_s else 0.0
        if attained <= 0 or not np.isfinite(op.cost.intensity):
            continue
        ax.plot([op.cost.intensity], [attained], marker="D", color=colour, ms=6, mec="black", mew=0.6)
        y_values.append(attained)
        if op.device == devices[0].name or len({o.label for o in ops}) == len(ops):
            spot = (op.cost.bound, round(np.log10(op.cost.intensity), 1), round(np.log10(attained), 1))
            labelled.setdefault(spot, []).append(op.label)
    for (bound, log_i, log_p), labels in labelled.items():
        ax.annotate(f"{', '.join(dict.fromkeys(labels))}\n({bound})", (10**log_i, 10**log_p), xytext=(-8, 6),
                    textcoords="offset points", ha="right", fontsize=8)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(min(y_values) / 2, max(y_values) * 3)
    ax.set_xlabel("arithmetic intensity [FLOP/byte]")
    ax.set_ylabel("attainable performance [FLOP/s]")
    ax.set_title(f"Roofline: {', '.join(d.name for d in devices)} (sustained ceilings)")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    ax.legend(loc="lower right", fontsize=8, title="memory levels", title_fontsize=8)
    fig.tight_layout()
    return fig

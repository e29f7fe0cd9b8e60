"""Pictures of a pim chip: its two rooflines with a step's ops placed on them, and the gain over a GPU vs batch.

The xPU's roof is min(R_x, I·B_x) at its sustained rates as the accelerator model prices it (the spec's
calibration, else the default derating; external bandwidth), the PIM's min(R_p, I·B_p) (internal bandwidth); an
op sits at its Op/B I and the FLOP/s it attains where perfsim placed it, launch included. Below the crossover
I = R_p/B_x the PIM finishes first. The dashed roof is co-processing (MoE experts, attention): per byte the xPU
alone takes t_x = max(I/R_x, 1/B_x), the PIM t_p = max(I/R_p, 1/B_p), together max(t_x·t_p/(t_x + t_p), 1/B_p),
since every byte crosses the internal path (perfsim.cost.pim).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.analysis.palette import device_colours
from perfsim.cost import derating
from perfsim.cost.pim import crossover_intensity, pim_bandwidth, pim_rate
from perfsim.errors import PerfsimError
from perfsim.hardware import Pim
from perfsim.output import human

if TYPE_CHECKING:
    import pandas as pd

    from perfsim.analysis.pim_study import PlacedOp

UNIT_STYLE = {"xpu": ("o", "#1f77b4", "xPU"), "pim": ("s", "#ff7f0e", "PIM"), "both": ("D", "#2ca02c", "both")}
"""Marker, colour and legend name of an op by where it ran."""


def _roofs(device: Pim, dtype: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """((R_x, B_x), (R_p, B_p)) in FLOP/s and bytes/s for `dtype`; the xPU's sustained."""
    rate = pim_rate(device.pim, dtype)
    if rate is None:
        raise PerfsimError(f"{device.name}: its PIM has no unit for {dtype}")
    return ((derating.chip_rate(device, "matrix", dtype)[1], derating.bandwidth(device, device.main)),
            (rate[1], pim_bandwidth(device.pim)))


def plot_pim_roofline(device: Pim, ops: list[PlacedOp], dtype: str = "bf16") -> Figure:
    """Both rooflines of `device` in `dtype`, ridge points and the crossover marked, every op placed and labelled."""
    (r_x, b_x), (r_p, b_p) = _roofs(device, dtype)
    intensities = [op.cost.intensity for op in ops if np.isfinite(op.cost.intensity) and op.cost.intensity > 0]
    lo, hi = min([0.1, *[i / 3 for i in intensities]]), max([3 * r_x / b_x, *[i * 3 for i in intensities]])
    x = np.geomspace(lo, hi, 400)
    fig = Figure(figsize=(10, 6.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    for name, rate, bandwidth, colour, offset in (("xPU", r_x, b_x, "#1f77b4", (4, 6)),
                                                  ("PIM", r_p, b_p, "#ff7f0e", (6, -14))):
        ax.plot(x, np.minimum(rate, x * bandwidth), color=colour, lw=2.2,
                label=f"{name}: {human(rate, 'FLOP/s')}, {human(bandwidth, 'B/s')}")
        ax.plot([rate / bandwidth], [rate], "o", color=colour, ms=5, mfc="white")
        ax.annotate(f"ridge {rate / bandwidth:.3g}", (rate / bandwidth, rate), textcoords="offset points",
                    xytext=offset, fontsize=8, color=colour)
    t_x, t_p = np.maximum(x / r_x, 1 / b_x), np.maximum(x / r_p, 1 / b_p)
    ax.plot(x, x / np.maximum(t_x * t_p / (t_x + t_p), 1 / b_p), color="#2ca02c", lw=1.2, ls="--",
            label="both units (co-processing)")
    cross = crossover_intensity(device, dtype)
    ax.axvline(cross, color="0.4", ls=":", lw=1.2, label=f"crossover Op/B {cross:.3g} = R_PIM / B_xPU")
    for unit, (marker, colour, name) in UNIT_STYLE.items():
        placed = [op for op in ops if op.placement.unit == unit]
        if placed:
            ax.scatter([op.cost.intensity for op in placed], [op.cost.flops / op.cost.time_s for op in placed],
                       marker=marker, color=colour, edgecolor="black", s=55, zorder=3, label=f"ran on {name}")
    for (intensity, attained), labels in _coinciding(ops).items():
        ax.annotate(", ".join(labels), (intensity, attained), textcoords="offset points", xytext=(7, -11), fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(lo * b_x, r_p) / 3, r_x * 3)
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel(f"attained {dtype} FLOP/s")
    ax.set_title(f"{device.name}: xPU and PIM rooflines")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _coinciding(ops: list[PlacedOp]) -> dict[tuple[float, float], list[str]]:
    """Op labels grouped by where they sit (points within 5 % on both axes share one label)."""
    groups: dict[tuple[float, float], list[str]] = {}
    for op in ops:
        point = (op.cost.intensity, op.cost.flops / op.cost.time_s)
        if not all(np.isfinite(point)) or min(point) <= 0:
            continue
        near = next((key for key in groups if all(abs(np.log(a / b)) < 0.05 for a, b in zip(key, point, strict=True))),
                    point)
        groups.setdefault(near, []).append(op.label)
    return groups


def plot_gain(frame: pd.DataFrame, baseline: str, metric: str = "tokens_per_s") -> Figure:
    """`metric` of every hardware over `baseline`'s, against batch (a decode_sweep frame). Raise PerfsimError if
    the frame lacks `baseline`."""
    if baseline not in set(frame["hardware"]):
        have = ", ".join(frame["hardware"].unique())
        raise PerfsimError(f"plot_gain: no rows for baseline '{baseline}' (have {have})")
    base = frame[frame["hardware"] == baseline].set_index("batch")[metric]
    others = [name for name in frame["hardware"].unique() if name != baseline]
    colours = device_colours(others)
    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    for name in others:
        rows = frame[frame["hardware"] == name].set_index("batch")[metric]
        ratio = (rows / base).dropna()
        ax.plot(ratio.index, ratio.values, "o-", color=colours[name], label=name)
    ax.axhline(1.0, color="0.4", lw=1, ls="--")
    ax.set_xlabel("batch (sequences decoding at once)")
    ax.set_ylabel(f"{metric} / {baseline}'s")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig

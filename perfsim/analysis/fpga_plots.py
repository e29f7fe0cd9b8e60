"""Pictures of the FPGA model on M3ViT: a frame's latency by op (perfsim.cost.fpga_frame) on each chip, and
energy per frame on the three chips with the FPGA's energy-efficiency gains. Each returns a matplotlib Figure
(never shows it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost.fpga_frame import EnergyComparison, FrameCost


def _figure(width: float = 6.4, height: float = 4.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def plot_latency_by_layer_type(frames: Sequence[FrameCost]) -> Figure:
    """Milliseconds per frame spent in each op of the frame's trace (qkv, attention, experts, ...), one bar group
    per chip, log x so the FPGA's and the baselines' times share one axis."""
    fig, ax = _figure(7.0, 4.4)
    kinds = list(dict.fromkeys(kind for frame in frames for kind in frame.by_type))
    height = 0.8 / len(frames)
    for i, frame in enumerate(frames):
        ms = [frame.by_type.get(kind, (0.0, None))[0] * 1e3 for kind in kinds]
        ax.barh([k + i * height for k in range(len(kinds))], ms, height,
                label=f"{frame.device} ({frame.latency_s * 1e3:.2f} ms/frame)")
    ax.set_yticks([k + height * (len(frames) - 1) / 2 for k in range(len(kinds))], kinds)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="ms per frame", title="M3ViT frame: latency by op")
    ax.legend(fontsize="small")
    return fig


def plot_energy_per_frame(comparison: EnergyComparison, published: Mapping[str, float] | None = None) -> Figure:
    """Energy per frame (mJ) on each chip; the title gives the predicted gains (and `published` ones, keyed
    'gpu' and 'cpu', when given)."""
    fig, ax = _figure()
    names = list(comparison.energy_j)
    mj = [comparison.energy_j[name] * 1e3 for name in names]
    bars = ax.bar(names, mj, color=["#2ca02c", "#1f77b4", "#ff7f0e"][: len(names)])
    ax.bar_label(bars, fmt="%.0f mJ")
    gains = f"FPGA gain: {comparison.fpga_vs_gpu:.2f}× vs GPU, {comparison.fpga_vs_cpu:.2f}× vs CPU"
    if published:
        gains += f"\n(published {published['gpu']:.2f}×, {published['cpu']:.2f}×)"
    ax.set(ylabel="energy per frame (mJ)", title=gains)
    return fig

"""MCU plots: MAC/cycle per layer of a network, speed-up against cores, live SRAM per layer against capacity.

Each function returns a matplotlib Figure (Agg canvas), never shows it. Predictions come from the MCU cost
model (perfsim.cost.mcu) and its memory model (perfsim.cost.mcu_memory).
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost.mcu import mcu_cost
from perfsim.cost.mcu_memory import live_activations, peak_sram
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.mcu import Mcu
from perfsim.models.mcu_training import training_ops
from perfsim.models.network import network_ops
from perfsim.ops import OpBase


def _figure(title: str, width: float = 6.4) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _device(hardware: str | Mcu) -> Mcu:
    device = load_hardware(hardware) if isinstance(hardware, str) else hardware
    if device.kind != "mcu":
        raise PerfsimError(f"{device.name} is a {device.kind}, not an MCU")
    return device


def layer_mac_per_cycle(network: str, hardware: str | Mcu, dtype: str | None = None,
                        train: bool = False) -> list[tuple[str, float]]:
    """(op, MACs per cycle) for every convolution and matrix product of one inference (or training) step."""
    device = _device(hardware)
    forward = network_ops(network, dtype)
    ops: Sequence[OpBase] = training_ops(forward) if train else forward
    rows = []
    for op in ops:
        if op.engine == "matrix" or hasattr(op, "macs"):
            seconds = mcu_cost(op, device).time_s
            rows.append((op.label, op.flops / 2 / (seconds * device.clock.peak)))
    return rows


def mac_per_cycle_per_layer(network: str, hardware: str | Mcu, dtype: str | None = None,
                            train: bool = False) -> Figure:
    """Bars of MAC/cycle per layer (the cluster's, all cores) of `network` on `hardware`."""
    device = _device(hardware)
    rows = layer_mac_per_cycle(network, device, dtype, train)
    fig, ax = _figure(f"{network} {'training' if train else 'inference'} on {device.name}",
                      width=max(6.4, 0.28 * len(rows)))
    ax.bar(range(len(rows)), [v for _, v in rows], color="#8c564b")
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=90, fontsize=7)
    ax.set_ylabel("MAC / cycle")
    fig.tight_layout()
    return fig


def speedups(op: OpBase, hardware: str | Mcu, cores: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """(cores, time on one core / time on that many) for `op` on `hardware`."""
    device = _device(hardware)
    counts = list(cores or range(1, device.cores + 1))

    def seconds(n: int) -> float:
        return mcu_cost(op, device.model_copy(update={"cores": n})).time_s

    one = seconds(1)
    return [(n, one / seconds(n)) for n in counts]


def speedup_vs_cores(ops: Sequence[OpBase], hardware: str | Mcu) -> Figure:
    """Predicted speed-up against cores for each op, with the ideal line."""
    device = _device(hardware)
    fig, ax = _figure(f"parallel speed-up on {device.name}")
    cores = list(range(1, device.cores + 1))
    ax.plot(cores, cores, color="grey", linestyle="--", label="ideal")
    for op in ops:
        points = speedups(op, device, cores)
        ax.plot([n for n, _ in points], [s for _, s in points], marker="o", label=op.label)
    ax.set_xlabel("cores")
    ax.set_ylabel("speed-up over one core")
    ax.legend(fontsize=7)
    return fig


def sram_per_layer(network: str, hardware: str | Mcu, dtype: str | None = None) -> Figure:
    """Bars of live SRAM per layer (activations, plus weights when they live in SRAM) against the capacity."""
    device = _device(hardware)
    fit = peak_sram(network, device, dtype)
    rows = live_activations(network, dtype)
    fig, ax = _figure(f"{network} SRAM on {device.name} (peak {fit.peak_bytes / 2**10:.0f} KiB)",
                      width=max(6.4, 0.12 * len(rows)))
    ax.bar(range(len(rows)), [(live + fit.weights_bytes) / 2**10 for _, live in rows], color="#1f77b4")
    ax.axhline(fit.capacity_bytes / 2**10, color="#d62728", label=f"{fit.level} {fit.capacity_bytes / 2**10:.0f} KiB")
    step = max(1, len(rows) // 30)
    ax.set_xticks(range(0, len(rows), step), [name for name, _ in rows][::step], rotation=90, fontsize=6)
    ax.set_ylabel("live KiB")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

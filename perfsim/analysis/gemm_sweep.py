"""GEMM efficiency against shape on accelerators, from the tile-and-wave cost model (no fitted curve).

Two sweeps per device: square M = N = K from 128 to 16384 (a quarter-octave apart, so wave quantisation shows
as a sawtooth), and skinny M = 1 … 512 at N = K = 8192 (the decode and small-batch regime).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.analysis.palette import device_colours
from perfsim.cost.accelerator import accelerator_cost, is_calibrated
from perfsim.errors import PerfsimError
from perfsim.hardware import Accelerator, Device, System, load_hardware
from perfsim.ops import Gemm

SQUARE_SIZES = tuple(sorted({round(128 * 2 ** (i / 4) / 64) * 64 for i in range(29)}))
"""M = N = K from 128 to 16384, four per octave, rounded to multiples of 64."""
SKINNY_ROWS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
SKINNY_NK = 8192


def _chip(device: str | Device | System) -> Device:
    chip = load_hardware(device) if isinstance(device, str) else device
    chip = chip.device
    if not isinstance(chip, Accelerator):
        raise PerfsimError(f"{chip.name} is a {chip.kind}; the GEMM efficiency sweep is for accelerators")
    return chip


def gemm_efficiency_sweep(devices: list[str | Device | System], sizes: tuple[int, ...] = SQUARE_SIZES,
                          rows: tuple[int, ...] = SKINNY_ROWS, dtype: str = "bf16") -> pd.DataFrame:
    """Predicted TFLOP/s of `dtype` GEMMs on each device: square M = N = K over `sizes` (sweep "square") and
    M over `rows` at N = K = 8192 (sweep "skinny"). One row per (device, shape), with the binding resource,
    the fraction of the datasheet peak and whether the spec is calibrated (else the default derating applies).
    """
    records = []
    for device in devices:
        chip = _chip(device)
        peak = chip.peak_flops(dtype)
        shapes = [("square", s, s, s) for s in sizes] + [("skinny", m, SKINNY_NK, SKINNY_NK) for m in rows]
        for sweep, m, n, k in shapes:
            op = Gemm(m=m, n=n, k=k, dtype=dtype)
            c = accelerator_cost(op, chip)
            tflops = op.flops / c.time_s / 1e12
            records.append({"device": chip.name, "sweep": sweep, "m": m, "n": n, "k": k, "dtype": dtype,
                            "time_s": c.time_s, "tflop_per_s": tflops, "bound": c.bound,
                            "fraction_of_peak": tflops * 1e12 / peak if peak else float("nan"),
                            "calibrated": is_calibrated(chip)})
    return pd.DataFrame.from_records(records)


def plot_gemm_efficiency(frame: pd.DataFrame) -> Figure:
    """Two panels from a gemm_efficiency_sweep frame: TFLOP/s against M = N = K, and against M at N = K = 8192."""
    fig = Figure(figsize=(13, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    square, skinny = fig.subplots(1, 2)
    colours = device_colours(frame["device"].unique())
    for device, rows in frame.groupby("device", sort=False):
        label = device if rows["calibrated"].all() else f"{device} (uncalibrated: default derating)"
        for ax, sweep in ((square, "square"), (skinny, "skinny")):
            part = rows[rows["sweep"] == sweep]
            ax.plot(part["m"], part["tflop_per_s"], marker="o", markersize=3, color=colours[device], label=label)
    dtype = frame["dtype"].iloc[0] if len(frame) else ""
    for ax, xlabel, title in ((square, "M = N = K", f"square {dtype} GEMM"),
                              (skinny, "M (rows)", f"{dtype} GEMM, N = K = {SKINNY_NK}")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("predicted TFLOP/s")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=0)
    square.legend(fontsize=8, loc="upper left")
    fig.suptitle("perfsim: GEMM throughput from tiles, waves, split-K and launch cost", fontsize=11)
    fig.tight_layout()
    return fig


def hidden_size_sweep(device: str | Device | System, hidden_sizes: list[int], tokens: int = 8192,
                      dtype: str = "bf16") -> pd.DataFrame:
    """A transformer's hidden-size choice against the chip's compute units (the AMD/Zyphra MI300X study's GEMM
    sizing): for each hidden size h the projection GEMM tokens × h × h, its output tiles, the waves they take
    over the cores, the fraction of the last wave's cores busy, and the predicted TFLOP/s. Sizes whose tiles fill
    whole waves run faster per FLOP than their neighbours."""
    from perfsim.cost.derating import rates
    from perfsim.cost.gemm_tiles import gemm_waves, tile_for

    chip = _chip(device)
    cores = rates(chip).cores
    records = []
    for h in hidden_sizes:
        op = Gemm(m=tokens, n=h, k=h, dtype=dtype)
        waves = gemm_waves(tokens, h, h, 1, tile_for(chip, dtype), cores)
        c = accelerator_cost(op, chip)
        full_waves = -(-waves.tiles // cores)
        records.append({"device": chip.name, "hidden": h, "tokens": tokens, "tiles": waves.tiles,
                        "waves": full_waves, "wave_fill": waves.tiles / (full_waves * cores),
                        "time_s": c.time_s, "tflop_per_s": op.flops / c.time_s / 1e12, "bound": c.bound})
    return pd.DataFrame.from_records(records)

"""A network under a per-layer precision plan on a MAC-array engine with SIMD lanes (XR-NPE): each layer's format,
lanes, time, bytes and energy from the cost model, and its quantisation error from the numpy reference; and the
whole network's time and energy against its error, one point per plan (DataFrames and a Figure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost import cost
from perfsim.cost.mac_array import array_cycles, array_format, as_gemms
from perfsim.hardware.mac_array import MacArray
from perfsim.ops_network import NetworkStep
from perfsim.reference.quant_error import gemm_output_error
from perfsim.specfile import validate


def plan_table(network: str, chip: MacArray, plan: Mapping[str, str], dtype: str | None = None,
               seed: int = 0) -> Any:
    """One row per layer of `network` (inference) on `chip` with `plan` (layer → format; others `dtype`):
    layer, format (stored), computed_in (the array's format for it), lanes, cycles, time_s, main_bytes,
    energy_j, bound, output_error (relative RMS error of the layer's output in its format, perfsim.reference.
    quant_error; NaN for layers without a matrix product). Raise PerfsimError for an unknown layer or format."""
    import pandas as pd

    step = validate(NetworkStep, {"network": network, "dtype": dtype, "plan": dict(plan)}, f"network {network}")
    records = []
    for layer in step.layers():
        c = cost(layer, chip)
        fmt = layer.compute_dtype
        computed = array_format(chip.array, fmt)
        gemms = as_gemms(layer)
        error = float("nan") if gemms is None else gemm_output_error(gemms.m, gemms.k, gemms.n, fmt, seed)
        records.append({"layer": layer.label, "format": fmt, "computed_in": computed,
                        "lanes": chip.array.formats[computed], "cycles": array_cycles(c), "time_s": c.time_s,
                        "main_bytes": c.bytes, "energy_j": c.energy_j, "bound": c.bound, "output_error": error})
    return pd.DataFrame.from_records(records)


def uniform_plan(network: str, fmt: str, except_layers: Mapping[str, str] | None = None) -> dict[str, str]:
    """A plan putting every layer of `network` in `fmt`, but `except_layers` in their own formats."""
    from perfsim.models.network import load_network

    return {layer.name: fmt for layer in load_network(network).layers} | dict(except_layers or {})


def plan_summary(network: str, chip: MacArray, plans: Mapping[str, Mapping[str, str]], dtype: str | None = None,
                 seed: int = 0) -> Any:
    """One row per named plan: plan, time_s, main_bytes, energy_j (sums over layers), output_error (the largest
    layer's error: the weakest layer bounds the network)."""
    import pandas as pd

    rows = []
    for name, plan in plans.items():
        table = plan_table(network, chip, plan, dtype, seed)
        rows.append({"plan": name, "time_s": table["time_s"].sum(), "main_bytes": table["main_bytes"].sum(),
                     "energy_j": table["energy_j"].sum(), "output_error": table["output_error"].max()})
    return pd.DataFrame.from_records(rows)


def plot_tradeoff(summary: Any, title: str = "") -> Figure:
    """Time (left) and energy (right) against the worst layer's output error, one marker per plan (legend)."""
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    markers = "osD^v<>pX*"
    for ax, column, scale, label in ((axes[0], "time_s", 1e3, "time (ms)"), (axes[1], "energy_j", 1e6, "energy (µJ)")):
        for i, (_, row) in enumerate(summary.iterrows()):
            ax.scatter(row["output_error"], row[column] * scale, marker=markers[i % len(markers)], label=row["plan"])
        ax.set(xscale="log", yscale="log", xlabel="worst layer's relative output error", ylabel=label)
    axes[1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig

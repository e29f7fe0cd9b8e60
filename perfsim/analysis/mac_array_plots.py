"""Array-shape sweeps on a MAC-array engine: cycles, time and utilisation of a workload's matrix products as the
array's rows, cols and dataflow change (a DataFrame), and a two-panel picture of it (a matplotlib Figure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import product
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost import cost
from perfsim.cost.mac_array import array_cycles, as_gemms
from perfsim.hardware.mac_array import MacArray, with_array
from perfsim.ops import OpBase


def array_shape_sweep(ops: Iterable[OpBase], chip: MacArray, rows: Sequence[int], cols: Sequence[int] | None = None,
                      dataflows: Sequence[str] | None = None) -> Any:
    """One row per (dataflow, rows, cols): the workload's matrix products (GEMMs and convolutions; other ops are
    left out) run one after another on `chip` reshaped. Columns: dataflow, rows, cols, pes, cycles, compute_s (the
    array's cycles alone), time_s (with the buffers and main memory),
    main_bytes, energy_j (None without pe_energy), array_utilization (MACs done / (cycles × PEs), cycle-weighted
    over the ops). `cols` defaults to `rows` (square arrays); `dataflows` to the chip's own."""
    import pandas as pd

    matrix_ops = [op for op in ops if as_gemms(op) is not None]
    records = []
    shapes = zip(rows, rows, strict=True) if cols is None else product(rows, cols)
    for (r, c), flow in product(list(shapes), dataflows or [chip.array.dataflow]):
        shaped = with_array(chip, rows=r, cols=c, dataflow=flow)
        costs = [cost(op, shaped) for op in matrix_ops]
        cycles = [array_cycles(x) for x in costs]
        used = sum(float(x.detail["array_utilization"]) * n for x, n in zip(costs, cycles, strict=True))
        energies = [x.energy_j for x in costs]
        records.append({
            "dataflow": flow, "rows": r, "cols": c, "pes": shaped.array.pes, "cycles": sum(cycles),
            "compute_s": sum(x.compute_s for x in costs), "time_s": sum(x.time_s for x in costs),
            "main_bytes": sum(x.bytes for x in costs),
            "energy_j": None if None in energies else sum(energies),
            "array_utilization": used / sum(cycles) if cycles else 0.0})
    return pd.DataFrame.from_records(records)


def plot_array_sweep(df: Any, title: str = "") -> Figure:
    """Utilisation (left) and time (right, log: solid with memory, dashed the array alone) against the array's PE
    count, one colour per dataflow; the first dataflow's points are labelled rows×cols."""
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    util, time = fig.subplots(1, 2)
    for i, (flow, group) in enumerate(df.groupby("dataflow", sort=False)):
        group = group.sort_values("pes")
        line, = util.plot(group["pes"], group["array_utilization"] * 100, marker="o", label=flow)
        time.plot(group["pes"], group["time_s"] * 1e3, marker="o", color=line.get_color(), label=flow)
        time.plot(group["pes"], group["compute_s"] * 1e3, linestyle="--", color=line.get_color())
        for _, row in group.iterrows() if i == 0 else ():
            util.annotate(f"{row['rows']}×{row['cols']}", (row["pes"], row["array_utilization"] * 100),
                          fontsize="x-small", textcoords="offset points", xytext=(3, 3))
    util.set(xscale="log", xlabel="PEs (rows × cols)", ylabel="array utilisation (%)", ylim=(0, 100))
    time.set(xscale="log", yscale="log", xlabel="PEs (rows × cols)", ylabel="time (ms)")
    util.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig

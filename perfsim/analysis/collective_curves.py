"""Bus bandwidth vs message size for the collectives, as the library's choice of algorithm and protocol runs them.

`curves()` sweeps sizes × kinds × group sizes on systems into a tidy DataFrame (one row per point:
the time, nccl-tests' bus bandwidth, the algorithm and protocol chosen, the binding link);
`plot_curves()` draws one panel per kind, one line per (system, group), marks every point where the
choice changes (the knees) and lists each line's algorithm, protocol and binding link at the largest size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfsim.cost import bus_bandwidth, cost
from perfsim.cost.collectives import choose
from perfsim.errors import PerfsimError
from perfsim.hardware import System, load_hardware
from perfsim.ops import Collective

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
SIZES = tuple(2**p for p in range(10, 35))  # 1 KiB … 16 GiB, doubling
GROUPS = (8, 64, 1024)


def curves(systems: Sequence[str | System], kinds: Sequence[str] = KINDS, groups: Sequence[int] = GROUPS,
           sizes: Sequence[int] = SIZES) -> pd.DataFrame:
    """One row per (system, kind, group, size): time_s, bus_bandwidth_bytes_per_s, algorithm, protocol, bound.

    A group larger than a system's chips is skipped. Raise PerfsimError for an unknown system or a group
    that does not spread evenly over it.
    """
    import pandas as pd

    rows = []
    for named in systems:
        system = load_hardware(named) if isinstance(named, str) else named
        if not isinstance(system, System):
            raise PerfsimError(f"{system.name} is one chip; collective curves need a system")
        for kind in kinds:
            for group in (g for g in groups if g <= system.chips):
                for size in sizes:
                    op = Collective(kind=kind, size_bytes=size, group=group)
                    c, choice = cost(op, system), choose(op, system)
                    rows.append({"system": system.name, "kind": kind, "group": group, "bytes": size,
                                 "time_s": c.time_s, "bus_bandwidth_bytes_per_s": bus_bandwidth(op, system, c.time_s),
                                 "algorithm": choice.algorithm, "protocol": choice.protocol, "bound": c.bound})
    return pd.DataFrame(rows)


def plot_curves(frame: pd.DataFrame) -> Figure:
    """Bus bandwidth (GB/s) vs message size, a panel per kind; knees marked, the largest size's choice listed."""
    from matplotlib.figure import Figure

    from perfsim.analysis.palette import device_colours

    kinds = list(dict.fromkeys(frame["kind"]))
    fig = Figure(figsize=(12, 4.2 * ((len(kinds) + 1) // 2)), layout="constrained")
    axes = fig.subplots((len(kinds) + 1) // 2, 2, squeeze=False).ravel()
    colours = device_colours(frame["system"])
    styles = dict(zip(sorted(set(frame["group"])), ("-", "--", ":", "-.") * 4, strict=False))
    for ax, kind in zip(axes, kinds, strict=False):
        notes = []
        for (system, group), line in frame[frame["kind"] == kind].groupby(["system", "group"], sort=True):
            x, y = line["bytes"].to_numpy(), line["bus_bandwidth_bytes_per_s"].to_numpy() / 1e9
            ax.plot(x, y, styles[group], color=colours[system], label=f"{system}, {group} GPUs")
            choice = (line["algorithm"] + "/" + line["protocol"]).to_numpy()
            knees = [i for i in range(1, len(choice)) if choice[i] != choice[i - 1]]
            ax.plot(x[knees], y[knees], "o", color=colours[system], markersize=4)
            last = line.iloc[-1]
            notes.append(f"{system} × {group}: {last['algorithm']}/{last['protocol']}, {last['bound']}")
        ax.text(0.98, 0.02, f"at {frame['bytes'].max() / 2**30:g} GiB\n" + "\n".join(notes), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, family="monospace")
        ax.set(xscale="log", yscale="log", title=kind, xlabel="message size (bytes)",
               ylabel="bus bandwidth (GB/s)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    fig.suptitle("Collective bus bandwidth (nccl-tests convention); dots: the algorithm/protocol choice changes")
    return fig

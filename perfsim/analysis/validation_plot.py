"""The validation picture: predicted / published per case on a log axis, cases grouped by hardware class.

Validation cases (left) are grouped by hardware kind; calibration cases (fitted to their measurement, so
near 1× by construction) and identity checks stand apart on the right; cases without a prediction
(unsupported, error) are listed below with what they lack. Shaded: ±15 % and 0.5×–2×.
"""

from __future__ import annotations

import textwrap

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

KIND_COLOURS = {"accelerator": "#1f77b4", "cpu": "#2ca02c", "wafer_mesh": "#9467bd", "pim": "#ff7f0e",
                "mcu": "#8c564b", "fpga": "#e377c2"}
ROLE_MARKERS = {"validation": "o", "calibration": "s", "identity": "^"}
RATIO_TICKS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BAND = 0.15
REASON_CHARS = 150
LINE_IN = 0.16
"""Inches per line of the list of cases without a prediction."""


def ratio(row: dict[str, object], key: str = "predicted") -> float:
    """`key` over the published value of a scored case."""
    return float(row[key]) / float(row["published"])


def plot_validation(rows: list[dict[str, object]]) -> Figure:
    """The Figure for the rows of a validation report (`validation_report(...)["cases"]`)."""
    scored = [r for r in rows if r["result"] == "ok" and float(r["published"]) > 0 and float(r["predicted"]) > 0]
    checks = [r for r in scored if r["role"] != "validation"]
    panels = [(f"validation: {n} cases" if (n := len(scored) - len(checks)) else "", "kind",
               [r for r in scored if r["role"] == "validation"]),
              ("calibration and identity checks", "role", checks)]
    panels = [p for p in panels if p[2]] or [("no case scored", "kind", [])]
    missing = [r for r in rows if r not in scored]
    height = 7.5 + LINE_IN * (len(missing) + 1)
    fig = Figure(figsize=(14, height), dpi=110)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, len(panels), width_ratios=[max(len(p[2]), 3) + 1 for p in panels], wspace=0.04)
    ratios = [ratio(r, k) for r in scored for k in ("predicted", "predicted_low", "predicted_high")]
    limits = (min([0.4, *ratios]) / 1.25, max([2.5, *ratios]) * 1.25)
    first = None
    for index, (title, key, cases) in enumerate(panels):
        ax = fig.add_subplot(grid[0, index], sharey=first)
        first = first or ax
        _panel(ax, cases, key, limits)
        ax.set_title(title, fontsize=10)
        if index:
            ax.tick_params(labelleft=False)
    first.set_ylabel("predicted / published (log)")
    _ratio_axis(first, limits)
    _legend(fig, scored)
    n_validation = sum(r["role"] == "validation" for r in scored)
    fig.suptitle(f"perfsim validate: predicted / published — {n_validation} validation cases scored, "
                 f"{len(checks)} calibration and identity checks, {len(missing)} without a prediction", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 1.0 / height, bottom=(1.5 + LINE_IN * len(missing)) / height)
    _missing(fig, missing)
    return fig


def _panel(ax: Axes, cases: list[dict[str, object]], key: str, limits: tuple[float, float]) -> None:
    """Cases grouped by `key` (kind or role), sorted by id within a group, a gap and a label per group."""
    ax.set_yscale("log")
    ax.axhspan(0.5, 2.0, color="0.93", zorder=0)
    ax.axhspan(1 - BAND, 1 + BAND, color="0.8", zorder=0)
    ax.axhline(1.0, color="black", lw=0.8, zorder=1)
    groups: dict[str, list[dict[str, object]]] = {}
    for row in sorted(cases, key=lambda r: str(r["id"])):
        groups.setdefault(str(row[key]), []).append(row)
    x, ticks, names = 0, [], []
    for group, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        if x:
            ax.axvline(x - 1, color="0.6", lw=0.6, ls=":")
        ax.text(x + (len(members) - 1) / 2, limits[1] / 1.08, f"{group.replace('_', ' ')} ({len(members)})",
                ha="center", va="top", fontsize=9, color="0.25")
        for row in members:
            _case(ax, x, row)
            ticks.append(x)
            names.append(str(row["id"]))
            x += 1
        x += 1
    ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=7.5)
    ax.set_xlim(-1, max(x - 1, 3))
    ax.grid(True, axis="y", which="major", alpha=0.3)


def _case(ax: Axes, x: float, row: dict[str, object]) -> None:
    """One case: its ratio, its band as a bar, and the ratio written beside it."""
    colour = KIND_COLOURS.get(str(row["kind"]), "0.4")
    low, high = ratio(row, "predicted_low"), ratio(row, "predicted_high")
    if low != high:
        ax.plot([x, x], [low, high], color=colour, lw=2.5, alpha=0.5, zorder=2)
    value = ratio(row)
    ax.plot([x], [value], marker=ROLE_MARKERS.get(str(row["role"]), "o"), color=colour, ms=7, mec="black",
            mew=0.5, ls="none", zorder=3, gid=f"case:{row['id']}")
    ax.annotate(f"{value:.2f}×", (x, max(value, high)), xytext=(0, 5), textcoords="offset points", ha="center",
                fontsize=6.5, color="0.2")


def _ratio_axis(ax: Axes, limits: tuple[float, float]) -> None:
    ax.set_ylim(*limits)
    ax.yaxis.set_major_locator(FixedLocator([t for t in RATIO_TICKS if limits[0] <= t <= limits[1]]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.yaxis.set_minor_locator(NullLocator())


def _legend(fig: Figure, scored: list[dict[str, object]]) -> None:
    """One row under the title: colours of kinds, markers of roles, the bands."""
    kinds = sorted({str(r["kind"]) for r in scored})
    roles = [role for role in ROLE_MARKERS if any(r["role"] == role for r in scored)]
    handles = [Line2D([], [], marker="o", color=KIND_COLOURS.get(k, "0.4"), ls="none", ms=7, label=k) for k in kinds]
    handles += [Line2D([], [], marker=ROLE_MARKERS[r], color="0.6", mec="black", ls="none", ms=7, label=r)
                for r in roles]
    handles += [Line2D([], [], color="0.8", lw=6, label=f"±{BAND:.0%}"),
                Line2D([], [], color="0.93", lw=6, label="0.5×–2×"),
                Line2D([], [], color="0.4", lw=2.5, alpha=0.5, label="prediction range")]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()), fontsize=8,
               ncols=len(handles), frameon=False)


def _missing(fig: Figure, missing: list[dict[str, object]]) -> None:
    """Below the case names: the cases without a prediction, one line each with what they lack."""
    if not missing:
        return
    renderer = fig.canvas.get_renderer()
    lowest = min([fig.subplotpars.bottom * fig.bbox.height,
                  *(label.get_window_extent(renderer).y0 for ax in fig.axes for label in ax.get_xticklabels())])
    lines = [f"{r['id']} ({r['hardware']}, {r['kind']}, {r['result']}): "
             f"{textwrap.shorten(str(r['reason']), REASON_CHARS, placeholder=' …')}" for r in missing]
    fig.text(fig.subplotpars.left, lowest / fig.bbox.height - 0.01, "Not scored:\n" + "\n".join(lines), va="top",
             ha="left", fontsize=7.5, family="monospace", gid="not-scored")

"""Roofline plots: log-log, a ceiling per dtype, a diagonal per memory level, ridge points, every op labelled.

In the style of the NERSC Empirical Roofline Toolkit: attainable FLOP/s (OP/s for integer dtypes) against
arithmetic intensity (work per byte of memory traffic). The ceilings are those of the dtypes the plotted
ops compute in (every dtype of the chip when no op is given). Bold lines are the sustained rates the cost
model uses (datasheet after the spec's calibration), so a point on a bold line is exactly the model's
prediction; faint lines of the same style are the datasheet rates, drawn where the calibration changes them.
Each device keeps its colour on every plot; each memory level has its own line style and shade. Ops are
numbered on the plot (points that coincide share one label) and named in the table beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from perfsim.analysis.labels import line_samples, place_labels, point_boxes
from perfsim.analysis.palette import device_colours, shade, tint
from perfsim.cost import OpCost
from perfsim.cost.roofline import compute_rate, level_bandwidth
from perfsim.dtypes import resolve_dtype
from perfsim.hardware import Device
from perfsim.hardware.common import DeviceCalibration
from perfsim.output import human

MAX_DTYPES = 4
LEVEL_STYLES = ("--", "-.", ":", (0, (5, 2, 1, 2, 1, 2)))
"""Line styles of the levels other than main memory (solid), nearest level first."""
MARKER_PT = 7.0
CLUSTER_PX = 7.0
DIFFERS = 1e-6


@dataclass(frozen=True)
class PlottedOp:
    """One op to draw: its label and its cost on `device`. `key` identifies the op: its points on several devices
    are one numbered op (default: the label; give keys to ops that share a label, e.g. their positions)."""

    label: str
    cost: OpCost
    device: str
    key: Hashable = None

    @property
    def identity(self) -> Hashable:
        return self.label if self.key is None else self.key


def distinct_labels(ops: list[PlottedOp]) -> list[PlottedOp]:
    """`ops` with one label per op (identity): a label several ops share becomes 'label #k', k = 1, 2, ... in
    order of first appearance."""
    first: dict[Hashable, str] = {}
    for op in ops:
        first.setdefault(op.identity, op.label)
    shared = {label for label, n in Counter(first.values()).items() if n > 1}
    seen: Counter[str] = Counter()
    renamed: dict[Hashable, str] = {}
    for identity, label in first.items():
        if label in shared:
            seen[label] += 1
            label = f"{label} #{seen[label]}"
        renamed[identity] = label
    return [op if op.label == renamed[op.identity] else replace(op, label=renamed[op.identity]) for op in ops]


@dataclass(frozen=True)
class Roof:
    """One device's lines: (dtypes, FLOP/s) ceilings, highest first, and (level, bytes/s) diagonals."""

    ceilings: list[tuple[str, float]]
    diagonals: list[tuple[str, float]]

    @property
    def top(self) -> float:
        return self.ceilings[0][1]


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


def datasheet(device: Device) -> Device:
    """`device` without its calibration: the rates `compute_rate` and `level_bandwidth` give are the datasheet's."""
    return device.model_copy(update={"calibration": DeviceCalibration()})


def op_dtype(cost: OpCost) -> str | None:
    """The dtype an op computes in on its device (after promotion): that of its busiest compute resource."""
    compute = {r.split(":", 1)[1]: s for r, s in cost.resource_s.items() if r.startswith("compute:")}
    return max(compute, key=compute.__getitem__) if compute else None


def work_unit(dtypes: list[str]) -> str:
    """'OP' when every dtype is an integer format, 'FLOP' when none is, else 'FLOP or OP'."""
    integer = {resolve_dtype(d).family == "int" for group in dtypes for d in group.split("/")}
    return "OP" if integer == {True} else "FLOP" if integer <= {False} else "FLOP or OP"


def roof(device: Device, dtypes: list[str]) -> Roof:
    """The device's ceilings for `dtypes` (its fastest distinct ceilings when empty) and its diagonals."""
    rates = [(d, compute_rate(device, "matrix", d)[1]) for d in dtypes] if dtypes else ceilings(device)
    return Roof(sorted(rates, key=lambda item: -item[1]), diagonals(device))


def plot_roofline(devices: list[Device], ops: list[PlottedOp]) -> Figure:
    """A roofline Figure for one or more devices with their ops as numbered points and a table naming them."""
    colours = device_colours(d.name for d in devices)
    ops = distinct_labels(ops)
    names = {op.identity: op.label for op in ops}  # each op's label, in order of first appearance
    dtypes = {d.name: list(dict.fromkeys(t for op in ops if op.device == d.name if (t := op_dtype(op.cost))))
              for d in devices}
    roofs = {d.name: (roof(d, dtypes[d.name]), roof(datasheet(d), dtypes[d.name])) for d in devices}
    unit = work_unit([c for sustained, _ in roofs.values() for c, _ in sustained.ceilings])

    fig = Figure(figsize=(14, 7.5), dpi=110)
    FigureCanvasAgg(fig)
    ax, side = fig.subplots(1, 2, gridspec_kw={"width_ratios": (2.4, 1)})
    x_lo, x_hi = _x_range(ops)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(*_y_range(roofs, ops, x_lo))
    handles, curves, ridges = [], [], []
    for device in devices:
        sustained, sheet = roofs[device.name]
        curves += _draw_roof(ax, device, sustained, sheet, colours[device.name], (x_lo, x_hi), handles)
        ridges += _draw_ridges(ax, device, sustained, sheet, colours[device.name])
    points = _draw_points(ax, ops, colours)
    _finish_axes(ax, devices, unit)
    legend = _legend(side, handles, bool(points))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.95, wspace=0.06)
    _table(side, legend, devices, ops, names, unit)

    obstacles = point_boxes(ax, [x for x, _, _ in points + ridges], [y for _, y, _ in points + ridges], MARKER_PT)
    samples = np.concatenate([line_samples(ax, xs, ys) for xs, ys in curves])
    labels = [_annotate(ax, x, y, text, colour, "ridge-label") for x, y, (text, colour) in ridges if text]
    labels += _cluster_labels(ax, ops, points, names, colours)
    place_labels(ax, labels, obstacles, samples)
    return fig


def _x_range(ops: list[PlottedOp]) -> tuple[float, float]:
    intensities = [op.cost.intensity for op in ops if np.isfinite(op.cost.intensity) and op.cost.intensity > 0]
    return min([0.01, *[i / 4 for i in intensities]]), max([1e4, *[i * 4 for i in intensities]])


def _y_range(roofs: dict[str, tuple[Roof, Roof]], ops: list[PlottedOp], x_lo: float) -> tuple[float, float]:
    tops = [r.top for pair in roofs.values() for r in pair]
    lows = [x_lo * bw for pair in roofs.values() for r in pair for _, bw in r.diagonals]
    lows += [a for op in ops if (a := _attained(op)) > 0]
    return min(lows) / 2, max(tops) * 3


def _attained(op: PlottedOp) -> float:
    return op.cost.flops / op.cost.time_s if op.cost.time_s else 0.0


def _draw_roof(ax: Axes, device: Device, sustained: Roof, sheet: Roof, colour: str, x_span: tuple[float, float],
               handles: list) -> list[tuple[list[float], list[float]]]:
    """Ceilings (from the fastest diagonal to the right edge) and diagonals (from the left edge to the top
    ceiling), sustained bold and datasheet faint where it differs. Returns the drawn polylines."""
    x_lo, x_hi = x_span
    curves = []
    for kind, this, other in (("sustained", sustained, sheet), ("datasheet", sheet, sustained)):
        faint = kind == "datasheet"
        fastest = this.diagonals[0][1]
        for (dtype, rate), (_, other_rate) in zip(this.ceilings, other.ceilings, strict=True):
            if faint and abs(rate / other_rate - 1) < DIFFERS:
                continue
            xs, ys = [rate / fastest, x_hi], [rate, rate]
            ax.plot(xs, ys, color=colour, lw=1.0 if faint else 2.0, alpha=0.35 if faint else 1.0,
                    gid=f"ceiling:{device.name}:{dtype}:{kind}")
            curves.append((xs, ys))
            if not faint:
                differs = abs(other_rate / rate - 1) >= DIFFERS
                note = f" (datasheet {human(other_rate, _rate_unit(dtype))})" if differs else ""
                handles.append((Line2D([], [], color=colour, lw=2.0),
                                f"{device.name} {dtype}: {human(rate, _rate_unit(dtype))}{note}"))
        for (level, bandwidth), (_, other_bw) in zip(this.diagonals, other.diagonals, strict=True):
            if faint and abs(bandwidth / other_bw - 1) < DIFFERS:
                continue
            style, level_colour = _level_style(device, level, colour)
            xs = list(np.logspace(np.log10(x_lo), np.log10(this.top / bandwidth), 2))
            ys = [x * bandwidth for x in xs]
            ax.plot(xs, ys, color=level_colour, ls=style, lw=1.0 if faint else 1.8, alpha=0.35 if faint else 1.0,
                    gid=f"diagonal:{device.name}:{level}:{kind}")
            curves.append((xs, ys))
            if not faint:
                note = f" (datasheet {human(other_bw, 'B/s')})" if abs(other_bw / bandwidth - 1) >= DIFFERS else ""
                handles.append((Line2D([], [], color=level_colour, ls=style, lw=1.8),
                                f"{device.name} {level}: {human(bandwidth, 'B/s')}{note}"))
    return curves


def _level_style(device: Device, level: str, colour: str) -> tuple[object, str]:
    """Main memory: solid in the device colour; other levels, nearest first: their own style and a lighter tint."""
    if level == device.main.name:
        return "-", colour
    others = [lvl.name for lvl in device.memory if lvl.name != device.main.name]
    index = others.index(level)
    return LEVEL_STYLES[index % len(LEVEL_STYLES)], tint(colour, 0.3 + 0.15 * (index % 3))


def _rate_unit(dtype: str) -> str:
    """OP/s for a ceiling of integer dtypes only, else FLOP/s."""
    return "OP/s" if work_unit([dtype]) == "OP" else "FLOP/s"


def _draw_ridges(ax: Axes, device: Device, sustained: Roof, sheet: Roof,
                 colour: str) -> list[tuple[float, float, tuple[str, str]]]:
    """A marker where each plotted ceiling meets each diagonal (filled: sustained, hollow: datasheet, main
    memory only); the main-memory ridge of each ceiling is labelled with its intensity."""
    ridges = []
    for (dtype, rate), (_, sheet_rate) in zip(sustained.ceilings, sheet.ceilings, strict=True):
        for level, bandwidth in sustained.diagonals:
            main = level == device.main.name
            ax.plot([rate / bandwidth], [rate], marker="o", ms=5 if main else 3.5, color=colour, ls="none",
                    gid=f"ridge:{device.name}:{dtype}:{level}:sustained")
            text = f"ridge {dtype}: {rate / bandwidth:.3g} {_rate_unit(dtype)[:-2]}/B" if main else ""
            ridges.append((rate / bandwidth, rate, (text, shade(colour, 0.25))))
        sheet_bw = dict(sheet.diagonals)[device.main.name]
        if abs(sheet_rate / sheet_bw / (rate / dict(sustained.diagonals)[device.main.name]) - 1) >= DIFFERS:
            ax.plot([sheet_rate / sheet_bw], [sheet_rate], marker="o", ms=5, mfc="white", mec=colour, alpha=0.6,
                    ls="none", gid=f"ridge:{device.name}:{dtype}:{device.main.name}:datasheet")
            ridges.append((sheet_rate / sheet_bw, sheet_rate, ("", colour)))
    return ridges


def _draw_points(ax: Axes, ops: list[PlottedOp], colours: dict[str, str]) -> list[tuple[float, float, int]]:
    """A diamond per op with FLOPs; returns (intensity, attained, index into ops) of each."""
    points = []
    for index, op in enumerate(ops):
        attained = _attained(op)
        if attained <= 0 or not np.isfinite(op.cost.intensity):
            continue
        ax.plot([op.cost.intensity], [attained], marker="D", color=colours[op.device], ms=6, mec="black", mew=0.6,
                ls="none", zorder=5, gid=f"op:{op.device}:{op.label}")
        points.append((op.cost.intensity, attained, index))
    return points


def _cluster_labels(ax: Axes, ops: list[PlottedOp], points: list[tuple[float, float, int]],
                    names: dict[Hashable, str], colours: dict[str, str]) -> list[Annotation]:
    """One label per group of a device's points within CLUSTER_PX of each other: the ops' numbers."""
    clusters: list[tuple[str, np.ndarray, list[int]]] = []
    for x, y, index in sorted(points, key=lambda p: (ops[p[2]].device, p[0], p[1])):
        pixel = ax.transData.transform((x, y))
        device = ops[index].device
        near = next((c for c in clusters if c[0] == device and np.abs(c[1] - pixel).max() <= CLUSTER_PX), None)
        if near is None:
            clusters.append((device, pixel, [index]))
        else:
            near[2].append(index)
    number = {identity: n for n, identity in enumerate(names, 1)}
    labels = []
    for device, pixel, members in sorted(clusters, key=lambda c: (c[1][0], -c[1][1], c[0])):
        numbers = sorted({number[ops[i].identity] for i in members})
        x, y = ax.transData.inverted().transform(pixel)
        labels.append(_annotate(ax, x, y, _ranges(numbers), shade(colours[device], 0.25),
                                f"op-label:{device}:{numbers[0]}"))
    return labels


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1–3,5'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _annotate(ax: Axes, x: float, y: float, text: str, colour: str, gid: str) -> Annotation:
    return ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=8, color=colour,
                       gid=gid, zorder=6, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                                "alpha": 0.75})


def _finish_axes(ax: Axes, devices: list[Device], unit: str) -> None:
    per_byte, per_s = ("FLOP/byte (int: OP/byte)", "FLOP/s (int: OP/s)") if unit == "FLOP or OP" else (
        f"{unit}/byte", f"{unit}/s")
    ax.set_xlabel(f"arithmetic intensity [{per_byte}]")
    ax.set_ylabel(f"attainable performance [{per_s}]")
    ax.set_title(f"Roofline: {' vs '.join(d.name for d in devices)}")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)


def _legend(ax: Axes, handles: list[tuple[Line2D, str]], with_ops: bool) -> Legend:
    """The lines: each device's ceilings and levels, then what bold, faint and the markers mean."""
    ax.axis("off")
    keys = [(Line2D([], [], color="0.3", lw=2.0), "bold: sustained (after calibration)")]
    if any(" (datasheet " in text for _, text in handles):
        keys.append((Line2D([], [], color="0.3", lw=1.0, alpha=0.35), "faint: datasheet"))
    keys.append((Line2D([], [], color="0.3", marker="o", ls="none", ms=5), "ridge point (hollow: datasheet)"))
    if with_ops:
        keys.append((Line2D([], [], color="0.5", marker="D", mec="black", ls="none", ms=6), "op (number: see table)"))
    lines, texts = zip(*(handles + keys), strict=True)
    return ax.legend(lines, texts, loc="upper left", fontsize=7.5, frameon=False, borderaxespad=0, handlelength=3)


def _table(ax: Axes, legend: Legend, devices: list[Device], ops: list[PlottedOp], names: dict[Hashable, str],
           unit: str) -> None:
    """Below the legend: number, name, intensity and binding resource per device of every op, in monospace,
    in the largest font (up to 8 pt) that fits the space left."""
    if not names:
        return
    by_key = {(op.identity, op.device): op for op in ops}
    width = max(len(n) for n in [*names.values(), "op"])
    bound = {d.name: max([len(d.name), *(len(op.cost.bound.split(":", 1)[-1]) for op in ops if op.device == d.name)])
             for d in devices}
    lines = [f"{'#':>2} {'op':<{width}} {unit + '/B':>8}  " + "  ".join(f"{d.name:<{bound[d.name]}}" for d in devices)]
    unplotted = False
    for number, (identity, name) in enumerate(names.items(), 1):
        first = next(op for op in ops if op.identity == identity)
        here = [by_key.get((identity, d.name)) for d in devices]
        bounds = [f"{op.cost.bound.split(':', 1)[-1] if op else '':<{bound[d.name]}}"
                  for d, op in zip(devices, here, strict=True)]
        mark = "*" if _attained(first) <= 0 else " "
        lines.append(f"{number:>2} {name:<{width}} {_intensity(first.cost.intensity):>8}{mark} " + "  ".join(bounds))
        unplotted |= mark == "*"
    lines.append("bound: the binding resource (memory level or dtype)")
    if unplotted:
        lines.append(f"* no {unit}: not on a log-log roofline")
    top = legend.get_window_extent().transformed(ax.transAxes.inverted()).y0 - 0.04
    box = ax.get_window_extent()
    points_per_px = 72 / ax.figure.dpi
    size = min(8.0, top * box.height * points_per_px / len(lines) / 1.25,
               box.width * points_per_px / max(len(line) for line in lines) / 0.62)
    ax.text(0, top, "\n".join(lines), family="monospace", fontsize=size, va="top", ha="left", transform=ax.transAxes)


def _intensity(value: float) -> str:
    """Work per byte as people read it: 1,365 / 4.03 / 0.667."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

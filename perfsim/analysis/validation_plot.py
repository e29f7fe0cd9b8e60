"""Predicted against published, log-log, one colour per hardware kind, with the y = x line and error bands."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

KIND_COLOURS = {"accelerator": "#1f77b4", "cpu": "#2ca02c", "wafer_mesh": "#9467bd", "pim": "#ff7f0e",
                "mcu": "#8c564b", "fpga": "#e377c2"}
ROLE_MARKERS = {"validation": "o", "calibration": "s", "identity": "^"}


def plot_validation(rows: list[dict[str, object]]) -> Figure:
    """Left: each case with a result at (published, predicted), its band as a bar. Right: predicted /
    published per case, which shows the error that the many decades of the left panel hide."""
    fig = Figure(figsize=(14, 7), dpi=110)
    ax, ratio_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.1]})
    ax.set_xscale("log")
    ax.set_yscale("log")
    scored = [r for r in rows if r["result"] == "ok" and float(r["published"]) > 0 and float(r["predicted"]) > 0]
    values = [float(r[k]) for r in scored for k in ("published", "predicted")]
    lo, hi = min(values) / 3, max(values) * 3
    xs = np.logspace(np.log10(lo), np.log10(hi), 64)
    ax.fill_between(xs, xs / 2, xs * 2, color="0.9", label="±2×")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.75", label="±10 %")
    ax.plot(xs, xs, color="black", lw=1, label="y = x")
    seen: set[tuple[str, str]] = set()
    for r in scored:
        kind, role = str(r["kind"]), str(r["role"])
        label = f"{kind} ({role})" if (kind, role) not in seen else None
        seen.add((kind, role))
        x, y = float(r["published"]), float(r["predicted"])
        colour = KIND_COLOURS.get(kind, "0.4")
        if r["predicted_low"] != r["predicted_high"]:
            ax.plot([x, x], [float(r["predicted_low"]), float(r["predicted_high"])], color=colour, lw=2, alpha=0.6)
        ax.plot([x], [y], marker=ROLE_MARKERS.get(role, "o"), color=colour, ms=7, mec="black", mew=0.5,
                ls="none", label=label)
        ax.annotate(str(r["id"]), (x, y), xytext=(4, -10), textcoords="offset points", fontsize=6)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published (SI units of each case's metric)")
    ax.set_ylabel("predicted (same units)")
    ax.set_title("perfsim validate: predicted vs published")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    _ratios(ratio_ax, scored)
    fig.tight_layout()
    return fig


def _ratios(ax, scored: list[dict[str, object]]) -> None:
    ordered = sorted(scored, key=lambda r: float(r["predicted"]) / float(r["published"]))
    ratios = [float(r["predicted"]) / float(r["published"]) for r in ordered]
    ys = np.arange(len(ordered))
    ax.axvspan(0.5, 2, color="0.9")
    ax.axvspan(0.9, 1.1, color="0.75")
    ax.axvline(1, color="black", lw=1)
    for y, r, ratio in zip(ys, ordered, ratios, strict=True):
        colour = KIND_COLOURS.get(str(r["kind"]), "0.4")
        low, high = (float(r[k]) / float(r["published"]) for k in ("predicted_low", "predicted_high"))
        if low != high:
            ax.plot([low, high], [y, y], color=colour, lw=2, alpha=0.6)
        ax.plot([ratio], [y], marker=ROLE_MARKERS.get(str(r["role"]), "o"), color=colour, ms=6, mec="black",
                mew=0.5)
    ax.set_xscale("log")
    ax.set_xlim(min([0.3, *ratios]) / 1.2, max([3.0, *ratios]) * 1.2)
    ax.set_yticks(ys, [str(r["id"]) for r in ordered], fontsize=7)
    ax.set_xlabel("predicted / published (log; shaded ±10 % and ±2×)")
    ax.set_title("error per case")
    ax.grid(True, axis="x", which="both", alpha=0.3)

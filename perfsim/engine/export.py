"""Timeline exports: Chrome-trace JSON (opens in Perfetto), a Gantt picture, and the timeline CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from perfsim.engine.blocks import STREAMS

BOUND_COLOURS = {"compute": "#1f77b4", "pim": "#ff7f0e", "memory": "#2ca02c", "link": "#d62728", "lut": "#9467bd",
                 "overhead": "#7f7f7f"}
TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"))
LABEL_POINTS = 6  # font size of op names on bars; a character is about 0.6 of it wide


def chrome_trace(timeline: pd.DataFrame) -> dict:
    """One process per chip, one thread per stream, one complete ('X') event per op execution (µs)."""
    events: list[dict] = []
    for chip in sorted(timeline.chip.unique()):
        events.append({"ph": "M", "name": "process_name", "pid": int(chip), "args": {"name": f"chip {chip}"}})
        for tid, stream in enumerate(STREAMS):
            events.append({"ph": "M", "name": "thread_name", "pid": int(chip), "tid": tid, "args": {"name": stream}})
    for row in timeline.itertuples(index=False):
        events.append({"name": row.op, "cat": row.bound, "ph": "X", "pid": int(row.chip),
                       "tid": STREAMS.index(row.stream), "ts": row.start_s * 1e6,
                       "dur": (row.end_s - row.start_s) * 1e6,
                       "args": {"bound": row.bound, "micro_batch": int(row.micro_batch)}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def chip_roles(timeline: pd.DataFrame) -> list[tuple[tuple[int, ...], str]]:
    """Gantt rows: (chips, stream), chips that run the same tasks sharing a row, in chip and stream order."""
    by_tasks: dict[frozenset, list[int]] = {}
    for chip, tasks in timeline.groupby("chip").task:
        by_tasks.setdefault(frozenset(tasks), []).append(int(chip))
    rows = []
    for chips in sorted(by_tasks.values()):
        streams = set(timeline.stream[timeline.chip == chips[0]])
        rows += [(tuple(chips), s) for s in STREAMS if s in streams]
    return rows


def role_label(chips: tuple[int, ...], stream: str) -> str:
    """'chip 3 comm', 'chips 0–7 compute' (a contiguous range) or 'chips 0,2 compute'."""
    if len(chips) == 1:
        return f"chip {chips[0]} {stream}"
    contiguous = chips == tuple(range(chips[0], chips[-1] + 1))
    names = f"{chips[0]}–{chips[-1]}" if contiguous else ",".join(map(str, chips))
    return f"chips {names} {stream}"


def gantt(timeline: pd.DataFrame, title: str) -> Figure:
    """A bar per op execution (layer by layer), a row per chip role and stream, coloured by binding resource;
    op names on bars wide enough to hold them; time from 0."""
    rows = chip_roles(timeline)
    span = float(timeline.end_s.max()) if len(timeline) else 0.0
    scale, unit = next(((s, u) for s, u in TIME_UNITS if span >= s), TIME_UNITS[-1])
    fig = Figure(figsize=(11, 1.2 + 0.35 * len(rows)), dpi=110)
    ax = fig.add_subplot()
    parts = []
    for y, (chips, stream) in enumerate(rows):
        part = timeline[(timeline.chip == chips[0]) & (timeline.stream == stream)]
        spans = list(zip(part.start_s / scale, (part.end_s - part.start_s) / scale, strict=True))
        colours = [BOUND_COLOURS.get(b.split(":", 1)[0], "0.5") for b in part.bound]
        ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=colours, edgecolor="white", linewidth=0.2)
        parts.append((y, spans, part.op))
    ax.set_yticks(range(len(rows)), [role_label(c, s) for c, s in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, span / scale or 1)
    ax.set_xlabel(f"time [{unit}]")
    fig.suptitle(title)
    for kind, colour in BOUND_COLOURS.items():
        ax.bar(0, 0, color=colour, label=f"{kind}-bound")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncols=len(BOUND_COLOURS), frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    _label_bars(fig, ax, parts)
    return fig


def _label_bars(fig: Figure, ax, parts: list) -> None:
    """Write each op's name on its bar where the bar is wider than the name."""
    axis_px = ax.get_position().width * fig.get_figwidth() * fig.dpi
    left, right = ax.get_xlim()
    px_per_unit = axis_px / (right - left)
    char_px = 0.6 * LABEL_POINTS / 72 * fig.dpi
    for y, spans, names in parts:
        for (start, width), name in zip(spans, names, strict=True):
            if width * px_per_unit >= (len(name) + 1) * char_px:
                ax.text(start + width / 2, y, name, ha="center", va="center", fontsize=LABEL_POINTS, color="white",
                        clip_on=True)


def write_timeline(timeline: pd.DataFrame, directory: Path, title: str) -> None:
    """DIR/trace.json, DIR/gantt.png and DIR/timeline.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trace.json").write_text(json.dumps(chrome_trace(timeline)))
    gantt(timeline, title).savefig(directory / "gantt.png")
    timeline.to_csv(directory / "timeline.csv", index=False)

"""Timeline exports: Chrome-trace JSON (opens in Perfetto) and a Gantt picture."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

STREAMS = ("compute", "comm")
BOUND_COLOURS = {"compute": "#1f77b4", "memory": "#2ca02c", "link": "#d62728", "lut": "#9467bd",
                 "overhead": "#7f7f7f"}


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


def gantt(timeline: pd.DataFrame, title: str) -> Figure:
    """A bar per op execution, a row per (chip, stream), coloured by binding resource."""
    rows = sorted({(int(c), s) for c, s in zip(timeline.chip, timeline.stream, strict=True)},
                  key=lambda cs: (cs[0], STREAMS.index(cs[1])))
    fig = Figure(figsize=(11, 1.2 + 0.35 * len(rows)), dpi=110)
    ax = fig.add_subplot()
    for y, (chip, stream) in enumerate(rows):
        part = timeline[(timeline.chip == chip) & (timeline.stream == stream)]
        spans = list(zip(part.start_s * 1e3, (part.end_s - part.start_s) * 1e3, strict=True))
        colours = [BOUND_COLOURS.get(b.split(":", 1)[0], "0.5") for b in part.bound]
        ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=colours, edgecolor="white", linewidth=0.2)
    ax.set_yticks(range(len(rows)), [f"chip {c} {s}" for c, s in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time [ms]")
    fig.suptitle(title)
    for kind, colour in BOUND_COLOURS.items():
        ax.bar(0, 0, color=colour, label=f"{kind}-bound")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncols=len(BOUND_COLOURS), frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def write_timeline(timeline: pd.DataFrame, directory: Path, title: str) -> None:
    """DIR/trace.json, DIR/gantt.png and DIR/timeline.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trace.json").write_text(json.dumps(chrome_trace(timeline)))
    gantt(timeline, title).savefig(directory / "gantt.png")
    timeline.to_csv(directory / "timeline.csv", index=False)

"""Deterministic label placement: each label takes the free spot nearest its point, or a leader line to one.

Labels are annotations in offset points around their data point. In the order given, each tries eight
directions on rings of growing radius and keeps the first ring with a spot that overlaps no placed label,
no obstacle (markers) and stays inside the axes; on that ring it prefers the spot near the fewest other
markers (so a label reads as its own point's), then the one crossing the fewest line samples. Lay the
figure out first: placement works in the display coordinates of the final layout.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

DIRECTIONS = ((1, 0, "left", "center"), (1, 1, "left", "bottom"), (0, 1, "center", "bottom"),
              (-1, 1, "right", "bottom"), (-1, 0, "right", "center"), (-1, -1, "right", "top"),
              (0, -1, "center", "top"), (1, -1, "left", "top"))
RADII_PT = (4.0, 12.0, 22.0, 34.0, 50.0, 70.0, 95.0)
PAD_PX = 1.5
NEAR_PX = 8.0


def point_boxes(ax: Axes, xs: list[float], ys: list[float], size_pt: float) -> list[Bbox]:
    """Square boxes of side `size_pt` around data points, in display pixels (markers as obstacles)."""
    half = size_pt * ax.figure.dpi / 72 / 2
    centres = ax.transData.transform(list(zip(xs, ys, strict=True))) if xs else []
    return [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in centres]


def line_samples(ax: Axes, xs: list[float], ys: list[float], every_px: float = 6.0) -> np.ndarray:
    """Display-pixel points every `every_px` along a polyline given in data coordinates, shape (n, 2)."""
    pixels = ax.transData.transform(np.column_stack([xs, ys]))
    pieces = [np.linspace(a, b, max(2, int(np.hypot(*(b - a)) / every_px) + 1)) for a, b in itertools.pairwise(pixels)]
    return np.concatenate(pieces) if pieces else np.empty((0, 2))


def text_box(label: Text) -> Bbox:
    """The label's text extent in display pixels (an annotation's arrow excluded)."""
    renderer = label.get_figure(root=True).canvas.get_renderer()
    if isinstance(label, Annotation):
        label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)


def place_labels(ax: Axes, labels: list[Annotation], obstacles: list[Bbox], lines: np.ndarray) -> None:
    """Move each label (in order) to its first free spot; draw a leader line when it sits beyond the first ring."""
    inside = ax.get_window_extent()
    placed = list(obstacles)
    for label in labels:
        label.set_annotation_clip(False)
        anchor = ax.transData.transform(label.xy)
        centres = np.array([((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2) for b in obstacles]).reshape(-1, 2)
        others = centres[np.abs(centres - anchor).max(axis=1) > 1]
        best: tuple[float, int, int, float, int] | None = None
        for radius in RADII_PT:
            for index in range(len(DIRECTIONS)):
                box = _try(label, radius, index).padded(PAD_PX)
                hard = sum(_overlap(box, other) for other in placed) + _outside(box, inside)
                near = _inside(others, box.padded(NEAR_PX))
                crossed = _inside(lines, box)
                if best is None or (hard, near, crossed) < best[:3]:
                    best = (hard, near, crossed, radius, index)
            if best is not None and best[0] == 0:
                break
        assert best is not None
        radius, index = best[3:]
        placed.append(_try(label, radius, index).padded(PAD_PX))
        if radius > RADII_PT[0]:
            _leader(ax, label)


def _try(label: Annotation, radius: float, index: int) -> Bbox:
    dx, dy, ha, va = DIRECTIONS[index]
    norm = math.hypot(dx, dy)
    label.xyann = (radius * dx / norm, radius * dy / norm)
    label.set_horizontalalignment(ha)
    label.set_verticalalignment(va)
    return text_box(label)


def _inside(points: np.ndarray, box: Bbox) -> int:
    """How many of the (n, 2) pixel points lie in `box`."""
    x, y = points[:, 0], points[:, 1]
    return int(np.count_nonzero((x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)))


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box: Bbox, inside: Bbox) -> float:
    return box.width * box.height - _overlap(box, inside)


def _leader(ax: Axes, label: Annotation) -> None:
    """A thin line from the point to the nearest point of the label's box (in data coordinates)."""
    box = text_box(label)
    x, y = ax.transData.transform(label.xy)
    end = (min(max(x, box.x0), box.x1), min(max(y, box.y0), box.y1))
    (x0, y0), (x1, y1) = ax.transData.inverted().transform([(x, y), end])
    ax.plot([x0, x1], [y0, y1], color=label.get_color(), lw=0.6, alpha=0.7, zorder=label.get_zorder() - 0.5)

"""The registry of figures drawn at build time: a docs-relative path (`training/mfu_vs_batch.png`,
`guide/figures/roofline-h100.png`) → a zero-argument function returning the matplotlib Figure perfsim draws.

guide_figures.py registers the guide's figures, page_figures.py those of the other pages; docs/hooks/figures.py
draws them all and adds each to the site at its path, where the page's image link points.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

FIGURES: dict[str, Callable[[], object]] = {}
DPI = 80


def figure(path: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register the decorated function as the figure at `path` (a .png path relative to docs/)."""

    def register(function: Callable[[], object]) -> Callable[[], object]:
        FIGURES[path] = function
        return function

    return register


def draw(path: str, folder: Path) -> Path:
    """Draw the figure registered at `path` into `folder` / `path`; return the file written."""
    import matplotlib.pyplot as plt

    fig = FIGURES[path]()
    written = folder / path
    written.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(written, dpi=DPI)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return written

"""The guide's figures: file name → a function returning the matplotlib Figure perfsim draws.

Each function is the call its chapter shows (docs/guide/*.md), so a figure is what a reader running the
chapter gets; docs/hooks/figures.py draws them at build time. No plotting code lives here: every figure
comes from perfsim's own `.plot()` methods and perfsim.analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import perfsim as ps  # noqa: E402
from perfsim import api  # noqa: E402

FIGURES: dict[str, Callable[[], object]] = {}
DPI = 80


def figure(name: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register the decorated function as the figure `name` (a .png file name)."""

    def register(function: Callable[[], object]) -> Callable[[], object]:
        FIGURES[name] = function
        return function

    return register


def draw(name: str, folder: Path) -> Path:
    """Draw figure `name` into `folder`; return its path."""
    import matplotlib.pyplot as plt

    fig = FIGURES[name]()
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def gallery_rows() -> list[dict]:
    """One row per shipped hardware spec (a system shows its chip's roofline)."""
    return api.hardware_list()


def gallery_markdown() -> str:
    lines = ["# Gallery: the roofline of every shipped device", "",
             "Every hardware spec perfsim ships, drawn at build time with `ps.roofline(name).plot()` "
             "(`perfsim roofline --hardware NAME`). A system (several chips and their links) shows its chip. "
             "Bold lines are the sustained rates the cost model uses, faint lines the datasheet's "
             "(see [Reading a roofline](roofline.md)).", ""]
    for row in gallery_rows():
        chip = row["chip"] or row["name"]
        kind = f"system of {row['chips']} × {chip}" if row["system"] else row["kind"]
        lines += [f"## {row['name']}", "", f"{row['description']} ({kind}).", "",
                  f"![roofline of {chip}](figures/gallery/{chip}.png)", ""]
    return "\n".join(lines)


# Reading a roofline (roofline.md)
@figure("roofline-h100.png")
def _roofline_h100() -> object:
    return ps.roofline("h100-sxm", ops=["gemm m=4096 n=4096 k=4096", "gemm m=1 n=4096 k=4096 name=gemv"]).plot()


@figure("roofline-h100-mi300x.png")
def _roofline_compare() -> object:
    return ps.roofline("h100-sxm", ops=["gemm m=4096 n=4096 k=4096"], compare=["mi300x"]).plot()


# Arithmetic intensity (intensity.md)
@figure("intensity-decode.png")
def _intensity_decode() -> object:
    return ps.step("llama-3-8b", "h100-sxm", phase="decode", batch=1, context=1024).plot()


@figure("intensity-prefill.png")
def _intensity_prefill() -> object:
    return ps.step("llama-3-8b", "h100-sxm", phase="prefill", batch=1, prompt_len=1024).plot()


# GEMM shapes, tiles and waves (gemm-tiles.md)
@figure("gemm-efficiency.png")
def _gemm_efficiency() -> object:
    from perfsim.analysis.gemm_sweep import gemm_efficiency_sweep, plot_gemm_efficiency

    return plot_gemm_efficiency(gemm_efficiency_sweep(["h100-sxm", "mi300x"]))


# Attention, GQA and FlashAttention (attention.md)
@figure("attention-gqa.png")
def _attention_gqa() -> object:
    return ps.roofline("h100-sxm", ops=[f"attention heads=32 kv_heads={kv} q_len=1 kv_len=4096 batch=16 name={name}"
                                        for name, kv in (("mha", 32), ("gqa", 8), ("mqa", 1))]).plot()


@figure("attention-flash.png")
def _attention_flash() -> object:
    return ps.roofline("h100-sxm", ops=[f"attention heads=32 kv_heads=8 q_len=4096 kv_len=4096 fused={fused} "
                                        f"name={name}" for name, fused in (("flash", True), ("unfused", False))]).plot()


# MoE decode and grouped experts (moe.md)
@figure("moe-decode.png")
def _moe_decode() -> object:
    return ps.step("mixtral-8x7b", "mi300x", phase="decode", batch=8, context=1024).plot()


@figure("moe-balance.png")
def _moe_balance() -> object:
    from perfsim.analysis.routing_plots import plot_load_balance

    return plot_load_balance([0, 0.4, 0.8, 1.2])


def _gallery(chip: str) -> Callable[[], object]:
    return lambda: ps.roofline(chip).plot()


for _row in gallery_rows():
    FIGURES.setdefault(f"gallery/{_row['chip'] or _row['name']}.png", _gallery(_row["chip"] or _row["name"]))

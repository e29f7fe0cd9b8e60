"""The figures of the pages outside the guide, registered in figure_registry.FIGURES at the path each page links.

Each function is the code of the page's python block that makes the figure (the page's earlier blocks supply
`chip`, `npe`, ...), without its prints and `savefig`; tests/test_doc_figures.py checks that every line of it
still is on the page. docs/hooks/figures.py draws them at build time.
"""

from __future__ import annotations

from figure_registry import figure

import perfsim as ps


# Data-parallel overlap (training.md)
@figure("training/dp_overlap.png")
def _dp_overlap() -> object:
    r = ps.train("zaya1-base", "mi300x-cluster", zero=1, micro_batch=4, global_batch=4096, seq_len=4096)
    return r.gantt("dp")


# MFU vs global batch (training.md)
@figure("training/mfu_vs_batch.png")
def _mfu_vs_batch() -> object:
    from matplotlib.figure import Figure

    batches = [128, 256, 512, 1024, 2048]
    runs = [ps.train("llama-3-70b", "h100-cluster", tp=8, pp=8, micro_batch=1, global_batch=b, seq_len=4096,
                     recompute="full", zero=1).summary for b in batches]
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    ax.plot(batches, [s["mfu"] for s in runs], "o-", label="MFU")
    ax.plot(batches, [s["hfu"] for s in runs], "s--", label="HFU (with the recomputed forward)")
    ax.plot(batches, [(8 - 1) / (s["micro_batches"] + 8 - 1) for s in runs], ":", label="1F1B bubble (p−1)/(m+p−1)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("global batch [sequences of 4,096 tokens]")
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8)
    ax.set_title("llama-3-70b on 1,024 H100: tp 8, pp 8, dp 16")
    figure.tight_layout()
    return figure


# Throughput against batch tokens (moe-lens.md)
@figure("moe-lens/bound.png")
def _moe_lens_bound() -> object:
    result = ps.offloaded("mixtral-8x7b", "host-8380x2-a40", batch=1024, context=511)
    return result.plot(simulate=[64, 256, 1024, 4096, 6028])


# An array-shape sweep (mac-arrays.md)
@figure("mac-arrays/array_sweep.png")
def _array_sweep() -> object:
    from perfsim.analysis.mac_array_plots import array_shape_sweep, plot_array_sweep
    from perfsim.ops import parse_op

    chip = ps.hardware("tpe-systolic-os-128")
    resnet8 = parse_op("network network=resnet8 dtype=int8").layers()
    sweep = array_shape_sweep(resnet8, chip, rows=[8, 16, 32, 64, 128, 256],
                              dataflows=["output_stationary", "weight_stationary", "input_stationary"])
    return plot_array_sweep(sweep, "ResNet8 (int8) on square arrays")


# The trade-off (xr-npe.md)
@figure("xr-npe/tradeoff.png")
def _xr_npe_tradeoff() -> object:
    from perfsim.analysis.precision_plan import plan_summary, plot_tradeoff, uniform_plan

    npe = ps.hardware("xr-npe")
    plans = {fmt: uniform_plan("resnet8", fmt) for fmt in ("posit16_1", "posit8_0", "posit4_1", "fp4_e2m1")}
    plans["fp4, first and last in posit8"] = uniform_plan("resnet8", "fp4", {"conv1": "posit8_0", "fc": "posit8_0"})
    summary = plan_summary("resnet8", npe, plans)
    return plot_tradeoff(summary, "ResNet8 on one XR-NPE engine")


# Bus bandwidth curves (collectives.md)
@figure("collectives/bus_bandwidth.png")
def _bus_bandwidth() -> object:
    from perfsim.analysis.collective_curves import curves, plot_curves

    frame = curves(["mi300x-cluster", "h100-cluster"])
    return plot_curves(frame)

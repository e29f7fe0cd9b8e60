"""The guide's figures: each a function returning the matplotlib Figure perfsim draws, registered in
figure_registry.FIGURES under guide/figures/<name>.

Each function is the call its chapter shows (docs/guide/*.md), so a figure is what a reader running the
chapter gets; docs/hooks/figures.py draws them at build time. No plotting code lives here: every figure
comes from perfsim's own `.plot()` methods and perfsim.analysis.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import figure_registry
from figure_registry import FIGURES

import perfsim as ps
from perfsim import api

FOLDER = "guide/figures"


def figure(name: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register the decorated function as the guide's figure `name` (a .png file name under guide/figures/)."""
    return figure_registry.figure(f"{FOLDER}/{name}")


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


# Collectives (collectives.md)
@figure("collectives-curves.png")
def _collectives() -> object:
    from perfsim.analysis.collective_curves import curves, plot_curves

    return plot_curves(curves(["mi300x-cluster", "h100-cluster"], kinds=["all_reduce", "all_to_all"]))


# PIM and Op/B (pim.md)
@figure("pim-roofline.png")
def _pim_roofline() -> object:
    from perfsim.analysis.pim_plots import plot_pim_roofline
    from perfsim.analysis.pim_study import placed_ops

    ops = placed_ops("mixtral-8x7b", "duplex-logic-pim", devices=2, tp=2, batch=64, context=384)
    return plot_pim_roofline(ps.hardware("duplex-logic-pim"), ops)


@figure("pim-gain.png")
def _pim_gain() -> object:
    from perfsim.analysis.pim_plots import plot_gain
    from perfsim.analysis.pim_study import decode_sweep

    sweep = decode_sweep("mixtral-8x7b", ["duplex-logic-pim", "h100-sxm"], [1, 16, 64, 256], 384, devices=2, tp=2)
    return plot_gain(sweep, "h100-sxm")


# The wafer-scale mesh (wafer.md)
@figure("wafer-gemv.png")
def _wafer_gemv() -> object:
    from perfsim.analysis.wafer_plots import plot_gemv_latency

    return plot_gemv_latency([2048, 4096, 8192, 16384, 32768])


@figure("wafer-plmr.png")
def _wafer_plmr() -> object:
    from perfsim.analysis.wafer_plots import plot_plmr_terms
    from perfsim.cost.wafer_plan import wafer_step
    from perfsim.models.scenario import Scenario

    decode = Scenario(model="llama-3-8b", phase="decode", batch=1, context=2048, weight_dtype="fp16",
                      activation_dtype="fp16", hardware="cerebras-wse2")
    return plot_plmr_terms(wafer_step(decode, region=420))


# Table-lookup GEMV (cpu-lut.md) and two-pass softmax (softmax.md)
@figure("cpu-lut-threads.png")
def _cpu_lut() -> object:
    from perfsim.analysis.cpu_plots import tokens_per_s_vs_threads

    return tokens_per_s_vs_threads("raspberry-pi-5", "bitnet-b1.58-3b", llama_cpp_dtype="int2")


@figure("softmax-variants.png")
def _softmax() -> object:
    from perfsim.analysis.cpu_plots import softmax_variants_vs_size

    return softmax_variants_vs_size("skylake-x-avx512")


# Training on an MCU (mcu-training.md)
@figure("mcu-mac.png")
def _mcu_mac() -> object:
    from perfsim.analysis.mcu_plots import mac_per_cycle_per_layer

    return mac_per_cycle_per_layer("resnet8", ps.hardware("pulp-open"), "fp16", train=True)


@figure("mcu-speedup.png")
def _mcu_speedup() -> object:
    from perfsim.analysis.mcu_plots import speedup_vs_cores
    from perfsim.ops_network import NetworkStep

    return speedup_vs_cores([NetworkStep(network="resnet8", step="train", dtype="fp16")], ps.hardware("pulp-open"))


# An FPGA ViT-MoE (fpga.md)
def _fpga_chips() -> tuple:
    return tuple(ps.hardware(name) for name in ("zcu102-edge-moe", "rtx-a6000", "xeon-6226r"))


@figure("fpga-latency.png")
def _fpga_latency() -> object:
    from perfsim.analysis.fpga_plots import plot_latency_by_layer_type
    from perfsim.cost.fpga_frame import frame_cost

    return plot_latency_by_layer_type([frame_cost(chip, ps.model("m3vit")) for chip in _fpga_chips()])


@figure("fpga-energy.png")
def _fpga_energy() -> object:
    from perfsim.analysis.fpga_plots import plot_energy_per_frame
    from perfsim.cost.fpga_frame import energy_comparison

    return plot_energy_per_frame(energy_comparison(*_fpga_chips(), ps.model("m3vit")), {"gpu": 2.24, "cpu": 4.90})


# Serving (serving.md) and KV prediction (kv-prediction.md)
@figure("serving-5.png")
def _serving_5() -> object:
    return ps.serve("llama-3-8b", "h100-sxm", rate=5, requests=100, slo_ttft="500ms", slo_tpot="50ms").plot()


@figure("serving-40.png")
def _serving_40() -> object:
    return ps.serve("llama-3-8b", "h100-sxm", rate=40, requests=150, slo_ttft="500ms", slo_tpot="50ms").plot()


@figure("kv-prediction.png")
def _kv_prediction() -> object:
    from perfsim.analysis.cpu_plots import ttft_vs_prompt_length

    return ttft_vs_prompt_length("m2-pro-cpu", "openelm-3b", "openelm-450m", [128, 256, 512, 1024])


# Energy (energy.md)
@figure("energy-pim.png")
def _energy_pim() -> object:
    from perfsim.analysis.pim_plots import plot_gain
    from perfsim.analysis.pim_study import decode_sweep

    sweep = decode_sweep("mixtral-8x7b", ["duplex-logic-pim", "h100-sxm"], [1, 16, 64, 256], 384, devices=2, tp=2)
    return plot_gain(sweep, "h100-sxm", metric="energy_per_token_j")


# Your own device and model (your-own.md)
@figure("your-own-roofline.png")
def _your_own() -> object:
    npu = ps.hardware(Path(__file__).parents[1] / "guide" / "my-npu.yaml")
    return ps.roofline(npu, ops=["gemm m=1 n=2048 k=2048 dtype=int8", "gemm m=512 n=2048 k=2048 dtype=int8"],
                       compare=["m2-gpu"]).plot()


# How accurate is perfsim? (accuracy.md)
@figure("accuracy.png")
def _accuracy() -> object:
    return ps.validate().plot()


# Training steps (training.md)
@figure("training-step.png")
def _training_step() -> object:
    return ps.train("llama-3-8b", "dgx-h100", zero=1, micro_batch=2, global_batch=64, seq_len=2048).plot()


@figure("training-pipeline.png")
def _training_pipeline() -> object:
    return ps.train("llama-3-8b", "dgx-h100", pp=4, zero=1, micro_batch=1, global_batch=16, seq_len=4096).gantt()


@figure("training-dp.png")
def _training_dp() -> object:
    return ps.train("llama-3-8b", "dgx-h100", zero=1, micro_batch=2, global_batch=64, seq_len=2048).gantt("dp")


# Capacity planning (capacity.md)
@figure("capacity-pareto.png")
def _capacity_pareto() -> object:
    return ps.sweep({"mode": "analytic", "base": {"model": "llama-3-70b", "phase": "decode"},
                     "points": [{"hardware": hw, "devices": n, "tp": n}
                                for hw in ("dgx-h100", "mi300x-node") for n in (1, 2, 4, 8)],
                     "axes": {"batch": [1, 2, 4, 8, 16, 32, 64, 128, 256], "context": [1024, 4096, 8000]}},
                    workers=1).plot("throughput", latency="tpot_s")


@figure("capacity-serving.png")
def _capacity_serving() -> object:
    plan = ps.plan("llama-3-70b", rate=20, slo_ttft="2s", slo_tpot="50ms", candidates=["h100-sxm", "mi300x"],
                   requests=100)
    return plan.serve("mi300x").plot()


def _gallery(chip: str) -> Callable[[], object]:
    return lambda: ps.roofline(chip).plot()


for _row in gallery_rows():
    FIGURES.setdefault(f"{FOLDER}/gallery/{_row['chip'] or _row['name']}.png", _gallery(_row["chip"] or _row["name"]))

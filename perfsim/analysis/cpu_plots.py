"""CPU plots: decode tokens/s vs threads (T-MAC vs llama.cpp), softmax variants vs size, TTFT with KV prediction.

Each function returns a matplotlib Figure (Agg canvas), never shows it. Predictions come from the public API
(estimate_step, cost), so they use whatever cost model perfsim.cost dispatches CPUs to.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perfsim.cost import cost
from perfsim.hardware import load_hardware
from perfsim.models.kv_prediction import kv_prediction_ttft
from perfsim.models.scenario import Scenario, with_cores
from perfsim.models.step import estimate_step
from perfsim.ops import SOFTMAX_PASSES, Softmax


def _figure(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig, ax


def decode_tokens_per_s(hardware: str, model: str, threads: int, lut_gemm: bool, weight_dtype: str | None = None,
                        context: int = 128) -> float:
    """Batch-1 decode tokens/s on `threads` cores: T-MAC (`lut_gemm`) or llama.cpp's dequantise-then-multiply."""
    scenario = Scenario(model=model, hardware=hardware, cores=threads, batch=1, context=context, lut_gemm=lut_gemm,
                        activation_dtype="fp16", weight_dtype=weight_dtype)
    return float(estimate_step(scenario).summary()["tokens_per_s"])


def tokens_per_s_vs_threads(hardware: str, model: str, weight_dtype: str | None = None,
                            llama_cpp_dtype: str | None = None) -> Figure:
    """Decode tokens/s against threads, T-MAC and llama.cpp (its weights in `llama_cpp_dtype`, default the same)."""
    cores = load_hardware(hardware).cores
    threads = list(range(1, cores + 1))
    tmac = [decode_tokens_per_s(hardware, model, t, True, weight_dtype) for t in threads]
    llama = [decode_tokens_per_s(hardware, model, t, False, llama_cpp_dtype or weight_dtype) for t in threads]
    fig, ax = _figure(f"{model} decode on {hardware}")
    ax.plot(threads, tmac, marker="o", label="T-MAC (table lookup)")
    ax.plot(threads, llama, marker="s", label=f"llama.cpp (dequantise, {llama_cpp_dtype or weight_dtype or 'model'})")
    ax.set_xlabel("threads")
    ax.set_ylabel("tokens/s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def softmax_time_s(hardware: str, cols: int, variant: str, write_allocate: bool = True, threads: int = 1,
                   rows: int = 1) -> float:
    """Seconds of a fp32 softmax of rows × cols on `threads` cores (caches warm: what fits is served from them)."""
    device = with_cores(load_hardware(hardware), threads)
    op = Softmax(rows=rows, cols=cols, dtype="fp32", variant=variant, write_allocate=write_allocate)
    return cost(op, device, "warm").time_s


def softmax_variants_vs_size(hardware: str, sizes: Sequence[int] = tuple(4**i for i in range(5, 13)),
                             write_allocate: bool = True) -> Figure:
    """Throughput (elements/ns) of each CPU softmax variant against the row length, one thread, warm caches."""
    fig, ax = _figure(f"fp32 softmax on one core of {hardware} (write-allocate {write_allocate})")
    for variant in (v for v in SOFTMAX_PASSES if v != "single_pass"):
        rate = [n / softmax_time_s(hardware, n, variant, write_allocate) / 1e9 for n in sizes]
        ax.plot(list(sizes), rate, marker="o", label=variant)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("elements per row")
    ax.set_ylabel("elements per ns")
    ax.legend(fontsize=8)
    return fig


def ttft_vs_prompt_length(hardware: str, base_model: str, auxiliary_model: str, prompt_lens: Sequence[int],
                          batch: int = 1, dtype: str = "fp32") -> Figure:
    """TTFT of the base model, its auxiliary model, and KV prediction (auxiliary + predictor + first token)."""
    rows = []
    for prompt_len in prompt_lens:
        base = Scenario(model=base_model, hardware=hardware, phase="prefill", batch=batch, prompt_len=prompt_len,
                        weight_dtype=dtype, activation_dtype=dtype)
        rows.append(kv_prediction_ttft(base, base.model_copy(update={"model": auxiliary_model})))
    fig, ax = _figure(f"TTFT on {hardware}, batch {batch}, {dtype}")
    ax.plot(prompt_lens, [r.base_s for r in rows], marker="o", label=f"base ({base_model})")
    ax.plot(prompt_lens, [r.auxiliary_s for r in rows], marker="^", label=f"auxiliary ({auxiliary_model})")
    ax.plot(prompt_lens, [r.predicted_s for r in rows], marker="s", label="KV prediction")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("TTFT (s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig

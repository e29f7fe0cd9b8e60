"""Serving metrics as defined in the docs, per-request streaming, and the latency and batch plots.

TTFT = first token time − arrival (queueing included); TPOT = (end − first token) /
(output tokens − 1) per request (requests with one output token have none); E2E = end −
arrival. Throughput = output tokens / makespan; goodput = requests meeting both SLOs /
makespan.
"""

from __future__ import annotations

import csv
import math
from array import array
from pathlib import Path
from typing import IO

import numpy as np
from matplotlib.figure import Figure

from perfsim.serving.arrivals import Request
from perfsim.serving.scheduler import ServingResult

PERCENTILES = (50, 90, 99)


class Recorder:
    """Collects each finished request's latencies (compact arrays) and streams rows to an open CSV."""

    def __init__(self, slo_ttft_s: float | None, slo_tpot_s: float | None, sink: IO[str] | None = None) -> None:
        self.ttft, self.tpot, self.e2e = array("d"), array("d"), array("d")
        self.good = 0
        self.slo_ttft_s, self.slo_tpot_s = slo_ttft_s, slo_tpot_s
        self.writer = csv.writer(sink) if sink else None
        if self.writer:
            self.writer.writerow(["id", "arrival_s", "prompt_len", "output_len", "ttft_s", "tpot_s", "e2e_s"])

    def __call__(self, request: Request, first_token_s: float, end_s: float) -> None:
        ttft = first_token_s - request.arrival_s
        tpot = (end_s - first_token_s) / (request.output_len - 1) if request.output_len > 1 else math.nan
        e2e = end_s - request.arrival_s
        self.ttft.append(ttft)
        self.tpot.append(tpot)
        self.e2e.append(e2e)
        ok_ttft = self.slo_ttft_s is None or ttft <= self.slo_ttft_s
        ok_tpot = self.slo_tpot_s is None or math.isnan(tpot) or tpot <= self.slo_tpot_s
        self.good += ok_ttft and ok_tpot
        if self.writer:
            self.writer.writerow([request.id, request.arrival_s, request.prompt_len, request.output_len, ttft, tpot,
                                  e2e])


def percentiles(values: array) -> dict[str, float | None]:
    data = np.frombuffer(values, dtype=float)
    data = data[~np.isnan(data)]
    return {f"p{p}": float(np.percentile(data, p)) if len(data) else None for p in PERCENTILES}


def summary(result: ServingResult, recorder: Recorder, devices: int) -> dict[str, object]:
    span = result.makespan_s
    throughput = result.output_tokens / span if span else 0.0
    return {
        "requests": result.finished,
        "ttft_s": percentiles(recorder.ttft),
        "tpot_s": percentiles(recorder.tpot),
        "e2e_s": percentiles(recorder.e2e),
        "throughput_tokens_per_s": throughput,
        "throughput_tokens_per_s_per_device": throughput / devices,
        "goodput_requests_per_s": recorder.good / span if span else 0.0,
        "makespan_s": span,
        "iterations": result.iterations,
        "preemptions": result.preemptions,
        "mean_batch": float(np.frombuffer(result.batch_sizes, dtype=np.uint32).mean()) if result.iterations else 0.0,
    }


def plots(result: ServingResult, recorder: Recorder) -> Figure:
    """Latency CDFs (TTFT, TPOT, E2E) and the batch size over time."""
    fig = Figure(figsize=(12, 4.5), dpi=110)
    cdf, batch = fig.subplots(1, 2)
    for name, values in (("TTFT", recorder.ttft), ("TPOT", recorder.tpot), ("E2E", recorder.e2e)):
        data = np.sort(np.frombuffer(values, dtype=float))
        data = data[~np.isnan(data)]
        if len(data):
            cdf.plot(data, np.arange(1, len(data) + 1) / len(data), label=name)
    cdf.set_xscale("log")
    cdf.set_xlabel("latency [s]")
    cdf.set_ylabel("fraction of requests")
    cdf.set_title("latency CDFs")
    cdf.grid(True, alpha=0.3)
    cdf.legend()
    times = np.frombuffer(result.times_s, dtype=float)
    sizes = np.frombuffer(result.batch_sizes, dtype=np.uint32)
    batch.step(times, sizes, where="post", lw=0.8)
    batch.set_xlabel("time [s]")
    batch.set_ylabel("sequences in the batch")
    batch.set_title("batch size over time")
    batch.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def write_outputs(result: ServingResult, recorder: Recorder, directory: Path) -> None:
    plots(result, recorder).savefig(directory / "serving.png")

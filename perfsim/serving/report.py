"""Serving metrics as defined in the docs, per-request streaming, and where the outputs go.

TTFT = first token time − arrival (queueing included); TPOT = (end − first token) /
(output tokens − 1) per request (requests with one output token have none); E2E = end −
arrival. Throughput = output tokens / makespan; goodput = requests meeting both SLOs /
makespan. Mean batch = Σ batch_i · Δt_i / Σ Δt_i over iterations i of duration Δt_i (a time
average over the busy time, not an average over iterations).
"""

from __future__ import annotations

import csv
import math
from array import array
from typing import IO, TYPE_CHECKING

import numpy as np

from perfsim.cost.energy import average_power_w, joules_per_token, with_waiting
from perfsim.serving.arrivals import Request
from perfsim.serving.scheduler import ServingResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PERCENTILES = (50, 90, 99)


class Recorder:
    """Collects each finished request's latencies (compact arrays) and streams rows to an open CSV."""

    def __init__(self, slo_ttft_s: float | None, slo_tpot_s: float | None, sink: IO[str] | None = None) -> None:
        self.ttft, self.tpot, self.e2e = array("d"), array("d"), array("d")
        self.good = 0
        self.first_arrival_s, self.last_arrival_s = math.inf, -math.inf
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
        self.first_arrival_s = min(self.first_arrival_s, request.arrival_s)
        self.last_arrival_s = max(self.last_arrival_s, request.arrival_s)
        ok_ttft = self.slo_ttft_s is None or ttft <= self.slo_ttft_s
        ok_tpot = self.slo_tpot_s is None or math.isnan(tpot) or tpot <= self.slo_tpot_s
        self.good += ok_ttft and ok_tpot
        if self.writer:
            self.writer.writerow([request.id, request.arrival_s, request.prompt_len, request.output_len, ttft, tpot,
                                  e2e])

    @property
    def arrival_rate(self) -> float | None:
        """Offered load in requests per second: (n − 1) / (last − first arrival); None if all arrive at once."""
        span = self.last_arrival_s - self.first_arrival_s
        return (len(self.e2e) - 1) / span if len(self.e2e) > 1 and span > 0 else None


def percentiles(values: array) -> dict[str, float | None]:
    data = np.frombuffer(values, dtype=float)
    data = data[~np.isnan(data)]
    return {f"p{p}": float(np.percentile(data, p)) if len(data) else None for p in PERCENTILES}


def time_weighted_mean(values: array, durations_s: array) -> float | None:
    """Σ values_i · Δt_i / Σ Δt_i; None when no time passed."""
    weights = np.frombuffer(durations_s, dtype=float)
    total = float(weights.sum())
    return float(np.dot(np.asarray(values, dtype=float), weights) / total) if total > 0 else None


def summary(result: ServingResult, recorder: Recorder, devices: int,
            waiting_w: float | None = None) -> dict[str, object]:
    """Latency percentiles, throughput, goodput and energy (`waiting_w`: watts a chip draws between ops)."""
    span = result.makespan_s
    throughput = result.output_tokens / span if span else 0.0
    busy = None if math.isnan(result.busy_energy_j) else result.busy_energy_j
    energy = with_waiting(busy, result.busy_chip_s, devices, span, waiting_w) if span else None
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
        "mean_batch": time_weighted_mean(result.batch_sizes, result.durations_s),
        "energy_j": energy,
        "joules_per_token": joules_per_token(energy, result.output_tokens),
        "average_power_w": average_power_w(energy, span),
    }


def serving_figure(result: ServingResult, recorder: Recorder, title: str) -> Figure:
    """The serving picture (see perfsim.serving.plot): latency CCDFs, batch and queue, KV-cache use."""
    from perfsim.serving.plot import plot_serving

    latencies = {"TTFT": recorder.ttft, "TPOT": recorder.tpot, "E2E": recorder.e2e}
    marks = {name: percentiles(values) for name, values in latencies.items()}
    rate = recorder.arrival_rate
    load = f"{rate:.3g} requests/s offered" if rate else "all requests at once"
    return plot_serving(f"{title} · {load} · {len(recorder.e2e):,} requests", latencies, marks,
                        {"TTFT": recorder.slo_ttft_s, "TPOT": recorder.slo_tpot_s}, result.times_s,
                        result.batch_sizes, result.queue_depths, result.kv_tokens, result.kv_capacity_tokens)

"""Serving metrics of a case: the serving simulation run from its `serve:` block.

ttft_s, tpot_s and e2e_s are the block's percentile over the finished requests (numpy's linear
interpolation; requests with one output token have no TPOT); throughput and energy are the run's
summary. max_rate_meeting_slo is perfsim.serving.capacity.max_rate over `rate_search` [low, high]:
low must meet the SLOs (the percentile of TTFT and of TPOT at or under each SLO given) and high must
miss them; it bisects geometrically to within RATE_TOLERANCE below the lowest rate found to miss them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import numpy as np

from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario
from perfsim.serving.arrivals import Request, length_sampler, poisson
from perfsim.serving.capacity import MAX_BISECTIONS, RATE_TOLERANCE, max_rate, probe
from perfsim.serving.run import ServingRun, simulate_serving
from perfsim.serving.scheduler import SchedulerConfig
from perfsim.validation.case import ServeBlock


def served_value(scenario: Scenario, block: ServeBlock, metric: str) -> tuple[float | None, str]:
    """(`metric` of serving `scenario` as `block` says, None if the run's energy is unknown; what binds it)."""
    if metric == "max_rate_meeting_slo":
        return max_rate_meeting_slo(scenario, block)
    run = simulate(scenario, block, block.rate)
    if metric in ("ttft_s", "tpot_s", "e2e_s"):
        return percentile(getattr(run.recorder, metric.removesuffix("_s")), block.percentile, metric), "serving"
    value = run.summary[metric]
    return (None if value is None else float(value)), "serving"  # type: ignore[arg-type]


def simulate(scenario: Scenario, block: ServeBlock, rate: float | None) -> ServingRun:
    """One serving simulation (analytic step costs) of `block`'s requests at `rate` (None: all at t = 0)."""
    config = SchedulerConfig(block.max_batch, block.max_tokens, block.chunked_prefill, block.block_size)
    if rate is None:
        requests = burst(block)
    else:
        requests = poisson(rate, block.requests, str(block.prompt_len), str(block.output_len), block.seed)
    return simulate_serving(scenario, requests, config, "analytic", block.slo_ttft_s, block.slo_tpot_s)


def burst(block: ServeBlock) -> Iterator[Request]:
    """`block.requests` requests all arriving at t = 0, lengths drawn from `block.seed`."""
    rng = np.random.default_rng(block.seed)
    prompt, output = length_sampler(str(block.prompt_len), "prompt_len"), length_sampler(str(block.output_len),
                                                                                         "output_len")
    return (Request(i, 0.0, prompt(rng), output(rng)) for i in range(block.requests))


def percentile(values: array, q: float, metric: str) -> float:
    """The `q`-th percentile of the recorded `values` (NaN dropped). Raise PerfsimError if none is left."""
    data = np.frombuffer(values, dtype=float)
    data = data[~np.isnan(data)]
    if not len(data):
        raise PerfsimError(f"no finished request has a {metric} (a TPOT needs two output tokens)")
    return float(np.percentile(data, q))


def missed_slo(scenario: Scenario, block: ServeBlock, rate: float) -> str | None:
    """The first SLO the block's percentile misses at `rate` ("slo_ttft_s" or "slo_tpot_s"), or None if all hold."""
    return probe(simulate(scenario, block, rate), rate, block.slo_ttft_s, block.slo_tpot_s, block.percentile).missed


def max_rate_meeting_slo(scenario: Scenario, block: ServeBlock) -> tuple[float, str]:
    """(the highest Poisson rate, requests/s, whose percentile latencies meet the SLOs; the SLO that binds above it),
    by perfsim.serving.capacity.max_rate over `rate_search`.

    Raise PerfsimError if `rate_search`'s low end misses the SLOs or its high end meets them.
    """
    assert block.rate_search is not None
    search = max_rate(lambda rate: simulate(scenario, block, rate), block.slo_ttft_s, block.slo_tpot_s,
                      block.percentile, block.rate_search, where="serve.rate_search")
    return search.rate_rps, search.binding


__all__ = ["MAX_BISECTIONS", "RATE_TOLERANCE", "max_rate_meeting_slo", "missed_slo", "served_value"]

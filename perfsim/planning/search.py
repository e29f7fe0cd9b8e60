"""The cheapest configuration per candidate chip that serves `rate` requests/s within TTFT and TPOT SLOs.

1. Layouts: a replica of N = 1, 2, 4, ... chips (up to max_chips), tensor-parallel within one server and
   pipeline-parallel across servers (tp = min(N, server chips), pp = N / tp).
2. Analytic pruning, per layout: the replica must hold the weights; one prompt's prefill must take at most
   the TTFT SLO; the largest batch B (a power of two up to MAX_BATCH) whose decode step at the longest context
   (prompt + output) fits memory and takes at most the TPOT SLO is the batch limit. Each request then costs
   the replica about t_prefill + output · t_decode(B) / B seconds, so R = ⌈rate · that⌉ replicas are needed
   at the least; layouts are tried in order of N · R, and the search stops once a confirmed one uses no more
   chips than the next layout's least.
3. Confirmation by the serving simulation (analytic step costs, continuous batching, `percentile` of TTFT and
   TPOT): perfsim.validation.serving.max_rate_meeting_slo bisects the rate one replica carries within the
   SLOs (λ*) on runs of BISECTION_REQUESTS requests, R = ⌈rate / λ*⌉, and one replica is simulated at
   rate / R on a run long enough to leave the start-up transient behind: its arrivals span STEADY_LIFETIMES
   request lifetimes (`requests`, where the demand gives it, sets every run's length instead). Sending each
   request of a Poisson stream to one of R replicas at random (probability 1/R each) splits it into R
   independent Poisson streams of rate / R, so one replica's run is exactly each replica's; if that run
   misses (a short bisection run flatters a replica: its queue has not built up yet), R grows by one, up to
   2 · R + MAX_EXTRA_REPLICAS.

Cost per hour = chips × the price per device-hour (a range where the spec gives one); per million tokens at
the tokens the deployment serves, rate × the mean output length. Joules per output token come from the
confirming run (busy chips only where the spec gives no idle power; a note says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.scenario import Scenario
from perfsim.planning import pricing
from perfsim.planning.replicas import ReplicaHardware, replica_hardware, systems_of
from perfsim.serving.capacity import steady_requests

MAX_BATCH = 256
MAX_EXTRA_REPLICAS = 3
"""The confirmation tries up to 2 · R + MAX_EXTRA_REPLICAS replicas (R from the bisection) before giving up."""
BISECTION_REQUESTS = 200
"""Requests of each run of the rate bisection, unless the demand gives a number."""
BRACKET_GROWTH = 4.0
"""The analytic rate per replica is widened by this factor each way until the serving runs bracket λ*."""


@dataclass(frozen=True)
class Demand:
    """What the deployment must serve: Poisson `rate` requests/s of `prompt_len` → `output_len` tokens, its SLOs
    (seconds) at `percentile`, judged on serving runs from `seed` of `requests` requests (None: BISECTION_REQUESTS
    while bisecting, STEADY_LIFETIMES request lifetimes to confirm)."""

    model: str
    rate: float
    slo_ttft_s: float
    slo_tpot_s: float
    percentile: float = 99.0
    prompt_len: int = 512
    output_len: int = 128
    requests: int | None = None
    seed: int = 0
    max_chips: int = 64


@dataclass(frozen=True)
class Layout:
    """One replica's chips and parallel degrees, its batch limit and the analytic estimates behind them."""

    replica: ReplicaHardware
    tp: int
    pp: int
    max_batch: int
    prefill_s: float
    tpot_s: float

    @property
    def chips(self) -> int:
        return self.tp * self.pp

    def least_replicas(self, demand: Demand) -> int:
        """⌈rate × seconds of replica time per request⌉: fewer replicas could not keep up even analytically."""
        per_request_s = self.prefill_s + demand.output_len * self.tpot_s / self.max_batch
        return max(1, math.ceil(demand.rate * per_request_s))

    def scenario(self, model: str) -> Scenario:
        return Scenario(model=model, hardware=self.replica.ref, devices=self.chips, tp=self.tp, pp=self.pp)


@dataclass
class Choice:
    """A candidate's configuration and what the serving simulation confirmed of it."""

    hardware: str
    layout: Layout | None = None
    replicas: int = 0
    ttft_s: float | None = None
    tpot_s: float | None = None
    throughput_tokens_per_s: float | None = None
    cost_per_hour: pricing.Range | None = None
    cost_per_million_tokens: pricing.Range | None = None
    joules_per_token: float | None = None
    meets_slo: bool = False
    notes: list[str] = field(default_factory=list)
    requests: int = 0
    """Requests of the confirming run."""

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON entry: hardware, chips (all replicas), replicas, parallelism, max_batch, latencies, cost, energy."""
        layout = self.layout
        return {"hardware": self.hardware, "chips": layout.chips * self.replicas if layout else None,
                "replicas": self.replicas if layout else None,
                "parallelism": {"tp": layout.tp, "pp": layout.pp} if layout else None,
                "max_batch": layout.max_batch if layout else None, "ttft_s": self.ttft_s, "tpot_s": self.tpot_s,
                "throughput_tokens_per_s": self.throughput_tokens_per_s,
                "cost_per_hour": pricing.shown(self.cost_per_hour),
                "cost_per_million_tokens": pricing.shown(self.cost_per_million_tokens),
                "joules_per_token": self.joules_per_token, "meets_slo": self.meets_slo}


def plan_candidate(chip: Device, demand: Demand) -> Choice:
    """The cheapest configuration of `chip` for `demand` (meets_slo False, with notes saying why, if none)."""
    layouts, rejected = _layouts(chip, demand)
    best = Choice(chip.name)
    for layout in sorted(layouts, key=lambda one: (one.chips * one.least_replicas(demand), one.chips)):
        if best.layout and layout.chips * layout.least_replicas(demand) >= best.layout.chips * best.replicas:
            break
        choice = _confirmed(chip, layout, demand, best.layout.chips * best.replicas if best.layout else None)
        if not choice.meets_slo:
            rejected += choice.notes
        elif best.layout is None or choice.layout.chips * choice.replicas < best.layout.chips * best.replicas:
            best = choice
    if not best.meets_slo:
        best.notes = [f"{chip.name}: no configuration up to {demand.max_chips} chips per replica meets the SLOs",
                      *rejected]
    return best


def _layouts(chip: Device, demand: Demand) -> tuple[list[Layout], list[str]]:
    """The layouts the analytic estimates keep, and one note per size they rule out."""
    layouts, notes = [], []
    chips = 1
    while chips <= demand.max_chips:
        try:
            layouts.append(_layout(chip, chips, demand))
        except PerfsimError as err:
            notes.append(f"{chip.name} × {chips}: {err}")
        chips *= 2
    return layouts, notes


def _layout(chip: Device, chips: int, demand: Demand) -> Layout:
    """The analytic layout of `chips` chips per replica. Raise PerfsimError (why) if it cannot meet the SLOs."""
    from perfsim.models.step import estimate_step

    replica = replica_hardware(chip, chips)
    servers = systems_of(chip.name)
    tp = min(chips, servers[0].chips) if servers else chips
    layout = Layout(replica, tp, chips // tp, 0, 0.0, 0.0)
    base = layout.scenario(demand.model)
    prefill = estimate_step(base.model_copy(update={"phase": "prefill", "batch": 1, "prompt_len": demand.prompt_len}),
                            hardware=replica.spec).step_s
    if prefill > demand.slo_ttft_s:
        raise PerfsimError(f"one prompt's prefill takes {prefill:.3g} s, over the TTFT SLO")
    context = demand.prompt_len + demand.output_len
    best: tuple[int, float] | None = None
    batch = 1
    while batch <= MAX_BATCH:
        try:
            step = estimate_step(base.model_copy(update={"phase": "decode", "batch": batch, "context": context}),
                                 hardware=replica.spec)
        except PerfsimError as err:
            if best is None:
                raise
            if "does not fit" not in str(err):
                raise
            break
        tpot = step.step_s / step.tokens_per_sequence
        if tpot > demand.slo_tpot_s:
            if best is None:
                raise PerfsimError(f"a decode step of one sequence takes {tpot:.3g} s, over the TPOT SLO")
            break
        best = (batch, tpot)
        batch *= 2
    assert best is not None
    return Layout(replica, tp, chips // tp, best[0], prefill, best[1])


def _confirmed(chip: Device, layout: Layout, demand: Demand, budget: int | None) -> Choice:
    """`layout` with the replicas the serving simulation finds it needs, and the confirming run's numbers; no
    configuration of `budget` chips or more (a cheaper one is confirmed already) is simulated."""
    from perfsim.validation.case import ServeBlock
    from perfsim.validation.serving import percentile, simulate

    scenario = layout.scenario(demand.model)
    block = ServeBlock(requests=demand.requests or BISECTION_REQUESTS, prompt_len=demand.prompt_len,
                       output_len=demand.output_len, seed=demand.seed, percentile=demand.percentile,
                       slo_ttft_s=demand.slo_ttft_s, slo_tpot_s=demand.slo_tpot_s, max_batch=layout.max_batch)
    label = f"{chip.name} × {layout.chips} (tp {layout.tp}, pp {layout.pp})"
    try:
        capacity = _capacity(scenario, block, demand.rate / layout.least_replicas(demand))
    except PerfsimError as err:
        return Choice(chip.name, notes=[f"{label}: {err}"])
    first = replicas = max(1, math.ceil(demand.rate / capacity))
    lifetime_s = layout.prefill_s + demand.output_len * layout.tpot_s
    while replicas <= 2 * first + MAX_EXTRA_REPLICAS and (budget is None or layout.chips * replicas < budget):
        rate = demand.rate / replicas
        # unless the demand gives a number, the run spans STEADY_LIFETIMES request lifetimes (one prompt's
        # prefill + output × the analytic TPOT at the batch limit): a p99 of the steady state
        requests = demand.requests or steady_requests(rate, lifetime_s, BISECTION_REQUESTS)
        run = simulate(scenario, block.model_copy(update={"requests": requests}), rate)
        ttft = percentile(run.recorder.ttft, demand.percentile, "ttft_s")
        tpot = percentile(run.recorder.tpot, demand.percentile, "tpot_s")
        if ttft <= demand.slo_ttft_s and tpot <= demand.slo_tpot_s:
            return _priced(chip, layout, replicas, run, demand, ttft, tpot, requests)
        replicas += 1
    return Choice(chip.name, notes=[f"{label}: {replicas - 1} replicas still miss the SLOs"])


def _capacity(scenario: Scenario, block: Any, rate: float) -> float:
    """λ*: the highest rate one replica serves within the SLOs (max_rate_meeting_slo), bracketed around the
    analytic `rate` and widened by BRACKET_GROWTH² at the end that fails, up to three times. Raise
    PerfsimError if no bracket is found (even a light load misses the SLOs, or a heavy one meets them)."""
    from perfsim.validation.serving import max_rate_meeting_slo, missed_slo

    low, high = rate / BRACKET_GROWTH, rate * BRACKET_GROWTH
    for _ in range(3):
        try:
            return max_rate_meeting_slo(scenario, block.model_copy(update={"rate_search": (low, high)}))[0]
        except PerfsimError:
            if missed_slo(scenario, block, low) is not None:  # the low end misses: a lighter bracket
                low, high = low / BRACKET_GROWTH**2, low
            else:  # the high end still meets: a heavier one
                low, high = high, high * BRACKET_GROWTH**2
    raise PerfsimError(f"no bracket of rates found near {rate:.3g} requests/s: between {low:.3g} and {high:.3g} "
                       "the SLOs are met at both ends or at neither")


def _priced(chip: Device, layout: Layout, replicas: int, run: Any, demand: Demand, ttft_s: float,
            tpot_s: float, requests: int) -> Choice:
    result, summary = run.result, run.summary
    mean_output = result.output_tokens / result.finished
    tokens_per_s = demand.rate * mean_output
    hourly = pricing.per_hour(pricing.price_per_device_hour(layout.replica.spec), layout.chips * replicas)
    notes = [] if hourly else [f"{chip.name} has no price: cost is unknown"]
    joules = summary["joules_per_token"]
    if joules is None and not math.isnan(result.busy_energy_j):
        joules = result.busy_energy_j / result.output_tokens
        notes.append(f"{chip.name} has no idle power: joules_per_token counts busy chips only")
    return Choice(chip.name, layout, replicas, ttft_s, tpot_s, tokens_per_s, hourly,
                  pricing.per_million_tokens(hourly, tokens_per_s), joules, True, notes, requests)

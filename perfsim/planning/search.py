"""The cheapest configuration per candidate chip that serves `rate` requests/s within TTFT and TPOT SLOs.

1. Layouts (candidates()): a replica of every N from 1 to max_chips chips that the hardware allows (any N within
   one server, whole servers beyond it) split every way into tp · pp (· dp for MoE models) with tp at most one
   server's chips, and for an MoE model every expert-parallel degree ep dividing tp · dp (expert_tp = tp · dp /
   ep), for each weight and KV dtype asked for; perfsim.models.scenario.resolve decides which of them are valid
   (heads, KV heads and layers divisible, ep dividing the experts) and its PerfsimError is the reason one is not.
2. Analytic pruning, per layout: the replica must hold the weights; one prompt's prefill must take at most
   the TTFT SLO; the largest batch B (dp · 2^k up to MAX_BATCH) whose decode step at the longest context
   (prompt + output) fits memory and takes at most the TPOT SLO is the batch limit. Each request then costs
   the replica about t_prefill + output · t_decode(B) / B seconds, so R = ⌈rate · that⌉ replicas are needed
   at the least; layouts are tried in order of N · R, then N, then that analytic time per request (of equally
   many chips, the fastest first: e.g. an MoE model's expert-parallel layout where its decode step is faster than
   the tensor-parallel one), and the search stops once a confirmed one uses no more chips than the next layout's
   least, or after MAX_SIMULATED layouts.
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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.scenario import Scenario
from perfsim.planning import pricing
from perfsim.planning.replicas import ReplicaHardware, replica_hardware, systems_of
from perfsim.serving.capacity import steady_requests

MAX_BATCH = 256
MAX_SIMULATED = 12
"""The serving simulation confirms at most this many layouts per chip, the analytically cheapest first."""
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
    weight_dtypes: tuple[str | None, ...] = (None,)
    """Weight dtypes or quantisation schemes to consider (None: the model's)."""
    kv_dtypes: tuple[str | None, ...] = (None,)
    """KV-cache dtypes to consider (None: the activation dtype)."""


@dataclass(frozen=True)
class Layout:
    """One replica's chips, parallel degrees and dtypes, its batch limit and the analytic estimates behind them
    (max_batch 0 before the analytic pruning). `moe`: ep and expert_tp are given to the scenario explicitly."""

    replica: ReplicaHardware
    tp: int
    pp: int
    dp: int = 1
    ep: int = 1
    expert_tp: int = 1
    moe: bool = False
    weight_dtype: str | None = None
    kv_dtype: str | None = None
    max_batch: int = 0
    prefill_s: float = 0.0
    tpot_s: float = 0.0

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def degrees(self) -> dict[str, int]:
        """{tp, pp, dp, ep, expert_tp} of one replica (a dense model: ep 1, expert_tp None)."""
        return {"tp": self.tp, "pp": self.pp, "dp": self.dp, "ep": self.ep,
                "expert_tp": self.expert_tp if self.moe else None}

    @property
    def label(self) -> str:
        """e.g. 'h100-sxm × 8 (tp 8, pp 1, dp 1, ep 8, weights bf16, kv bf16)'."""
        degrees = ", ".join(f"{k} {v}" for k, v in self.degrees.items() if v is not None)
        dtypes = "".join(f", {name} {value}" for name, value in (("weights", self.weight_dtype),
                                                                 ("kv", self.kv_dtype)) if value)
        return f"{self.replica.spec.device.name} × {self.chips} ({degrees}{dtypes})"

    def request_s(self, demand: Demand) -> float:
        """Seconds of replica time one request takes analytically: prefill + output × TPOT(B) / B."""
        return self.prefill_s + demand.output_len * self.tpot_s / self.max_batch

    def least_replicas(self, demand: Demand) -> int:
        """⌈rate × seconds of replica time per request⌉: fewer replicas could not keep up even analytically."""
        return max(1, math.ceil(demand.rate * self.request_s(demand)))

    @property
    def fields(self) -> dict[str, Any]:
        """The scenario fields of this layout (ep and expert_tp only for an MoE model: a dense one takes none)."""
        experts = {"ep": self.ep, "expert_tp": self.expert_tp} if self.moe else {}
        return {"devices": self.chips, "tp": self.tp, "pp": self.pp, "dp": self.dp, **experts,
                "weight_dtype": self.weight_dtype, "kv_dtype": self.kv_dtype}

    def scenario(self, model: str) -> Scenario:
        return Scenario(model=model, hardware=self.replica.ref, **self.fields)


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
                "parallelism": layout.degrees if layout else None,
                "weight_dtype": layout.weight_dtype if layout else None,
                "kv_dtype": layout.kv_dtype if layout else None,
                "max_batch": layout.max_batch if layout else None, "ttft_s": self.ttft_s, "tpot_s": self.tpot_s,
                "throughput_tokens_per_s": self.throughput_tokens_per_s,
                "cost_per_hour": pricing.shown(self.cost_per_hour),
                "cost_per_million_tokens": pricing.shown(self.cost_per_million_tokens),
                "joules_per_token": self.joules_per_token, "meets_slo": self.meets_slo}


def dtype_choices(names: Iterable[str] | None, flag: str) -> tuple[str | None, ...]:
    """The dtypes to consider: (None,) (the default) for None, else each name's format (resolve_format: a dtype or a
    quantisation scheme) once, in order. Raise PerfsimError naming `flag` for an empty list or an unknown name."""
    if names is None:
        return (None,)
    chosen: list[str | None] = []
    for name in names:
        try:
            found = resolve_format(name).name
        except PerfsimError as err:
            raise PerfsimError(f"{flag}: {err}") from None
        if found not in chosen:
            chosen.append(found)
    if not chosen:
        raise PerfsimError(f"{flag}: give at least one dtype, e.g. bf16,fp8_e4m3")
    return tuple(chosen)


def plan_candidate(chip: Device, demand: Demand) -> Choice:
    """The cheapest configuration of `chip` for `demand` (meets_slo False, with notes saying why, if none)."""
    layouts, rejected = _layouts(chip, demand)
    best = Choice(chip.name)
    # fewest chips in all first; of those, fewer per replica, then the analytically fastest per request
    ordered = sorted(layouts, key=lambda one: (one.chips * one.least_replicas(demand), one.chips,
                                               one.request_s(demand)))
    for tried, layout in enumerate(ordered):
        if best.layout and layout.chips * layout.least_replicas(demand) >= best.layout.chips * best.replicas:
            break
        if tried == MAX_SIMULATED:
            rejected.append(f"{chip.name}: {len(ordered) - tried} more layouts left unsimulated (at most "
                            f"{MAX_SIMULATED} are)")
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
    """The layouts the analytic estimates keep, and one note per candidate they (or resolve) rule out."""
    found, notes = candidates(chip, demand)
    layouts = []
    for layout in found:
        try:
            layouts.append(_analysed(layout, demand))
        except PerfsimError as err:
            notes.append(f"{layout.label}: {err}")
    return layouts, notes


def candidates(chip: Device, demand: Demand) -> tuple[list[Layout], list[str]]:
    """Every valid layout of up to demand.max_chips chips of `chip` per replica (not yet analysed), dtypes outermost
    in the order given, then chips ascending, tp descending, pp and ep ascending; and one note per layout that
    resolve rejects or whose replica hardware cannot be built (why)."""
    from perfsim.models.loader import load_model

    model = load_model(demand.model)
    servers = systems_of(chip.name)
    server_chips = servers[0].chips if servers else demand.max_chips
    shapes, notes = [], []
    for chips in range(1, demand.max_chips + 1):
        if chips > server_chips and chips % server_chips:
            continue  # not whole servers: no replica of that many
        try:
            replica = replica_hardware(chip, chips)
        except PerfsimError as err:
            notes.append(f"{chip.name} × {chips}: {err}")
            continue
        for tp in reversed(_divisors(min(chips, server_chips), chips)):
            for pp in _divisors(chips // tp, chips // tp):
                dp = chips // (tp * pp)
                if model.moe is None and dp > 1:
                    continue  # a dense model's data parallelism is the replicas
                for ep in _divisors(tp * dp, tp * dp) if model.moe else (dp,):
                    shapes.append(Layout(replica, tp, pp, dp, ep, tp * dp // ep, model.moe is not None))
    found = []
    for weights in demand.weight_dtypes:
        for kv in demand.kv_dtypes:
            for shape in shapes:
                layout = replace(shape, weight_dtype=weights, kv_dtype=kv)
                try:
                    found.append(_resolved(layout, demand))
                except PerfsimError as err:
                    notes.append(f"{layout.label}: {err}")
    return found, notes


def _divisors(most: int, of: int) -> list[int]:
    """The divisors of `of` up to `most`, ascending."""
    return [d for d in range(1, most + 1) if of % d == 0]


def _resolved(layout: Layout, demand: Demand) -> Layout:
    """`layout` with its dtypes' names as resolve reads them (the model's where None). Raise resolve's PerfsimError
    if the model and hardware do not allow it (degrees, the longest context); the batch is dp, one sequence each."""
    from perfsim.models.scenario import resolve

    scenario = layout.scenario(demand.model).model_copy(
        update={"batch": layout.dp, "context": demand.prompt_len + demand.output_len})
    r = resolve(scenario, layout.replica.spec)
    return replace(layout, weight_dtype=r.weight_dtype, kv_dtype=r.kv_dtype)


def _analysed(layout: Layout, demand: Demand) -> Layout:
    """`layout` with its analytic prefill, batch limit and TPOT. Raise PerfsimError (why) if it cannot meet the
    SLOs. Batches are dp · 2^k (each data-parallel rank at least one sequence) up to MAX_BATCH."""
    from perfsim.models.step import estimate_step

    spec = layout.replica.spec
    base = layout.scenario(demand.model)
    prefill = estimate_step(base.model_copy(update={"phase": "prefill", "batch": layout.dp,
                                                    "prompt_len": demand.prompt_len}), hardware=spec).step_s
    if prefill > demand.slo_ttft_s:
        raise PerfsimError(f"one prompt's prefill takes {prefill:.3g} s, over the TTFT SLO")
    context = demand.prompt_len + demand.output_len
    best: tuple[int, float] | None = None
    batch = layout.dp
    while batch <= MAX_BATCH:
        try:
            step = estimate_step(base.model_copy(update={"phase": "decode", "batch": batch, "context": context}),
                                 hardware=spec)
        except PerfsimError as err:
            if best is None or "does not fit" not in str(err):
                raise
            break
        tpot = step.step_s / step.tokens_per_sequence
        if tpot > demand.slo_tpot_s:
            if best is None:
                raise PerfsimError(f"a decode step of one sequence takes {tpot:.3g} s, over the TPOT SLO")
            break
        best = (batch, tpot)
        batch *= 2
    if best is None:
        raise PerfsimError(f"dp ({layout.dp}) is more than the batch limit ({MAX_BATCH})")
    return replace(layout, max_batch=best[0], prefill_s=prefill, tpot_s=best[1])


def _confirmed(chip: Device, layout: Layout, demand: Demand, budget: int | None) -> Choice:
    """`layout` with the replicas the serving simulation finds it needs, and the confirming run's numbers; no
    configuration of `budget` chips or more (a cheaper one is confirmed already) is simulated."""
    from perfsim.validation.case import ServeBlock
    from perfsim.validation.serving import percentile, simulate

    scenario = layout.scenario(demand.model)
    block = ServeBlock(requests=demand.requests or BISECTION_REQUESTS, prompt_len=demand.prompt_len,
                       output_len=demand.output_len, seed=demand.seed, percentile=demand.percentile,
                       slo_ttft_s=demand.slo_ttft_s, slo_tpot_s=demand.slo_tpot_s, max_batch=layout.max_batch)
    label = layout.label
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

"""One serving simulation end to end: costs, KV capacity, the scheduler (or replicas behind a router), metrics and
outputs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from matplotlib.figure import Figure

from perfsim.cost.collectives import rank_bandwidth
from perfsim.cost.energy import waiting_power_w
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware.system import Interconnect
from perfsim.models.scenario import Resolved, Scenario, one_per_replica
from perfsim.models.step import Engine
from perfsim.progress import Progress, on_terminal
from perfsim.serving.arrivals import Request
from perfsim.serving.context import ContextLimit
from perfsim.serving.costs import Speculation, StepCosts, kv_capacity_tokens
from perfsim.serving.fleet import serve_fleet, tier_summary
from perfsim.serving.kv_tiers import HostTier, host_link
from perfsim.serving.prefix_cache import PrefixCache
from perfsim.serving.report import Recorder, serving_figure, summary
from perfsim.serving.scheduler import WATERMARK, Disaggregation, SchedulerConfig, ServingResult, serve


@dataclass(frozen=True)
class Deployment:
    """How the scenario is deployed: `replicas` copies of it behind a `router` (perfsim.serving.router), each with
    `prefix_cache_tokens` of its KV cache set aside for shared prefixes and `host_kv_bytes` of host memory as a KV
    tier; requests beyond a replica handled by `context_policy` (perfsim.serving.context)."""

    replicas: int = 1
    router: str = "round-robin"
    prefix_cache_tokens: int = 0
    host_kv_bytes: float = 0.0
    context_policy: str = "drop"


@dataclass(frozen=True)
class ServingRun:
    """A finished serving simulation: its `summary` (as `serve --format json` prints it), the per-iteration
    record and the per-request latencies behind it (with replicas: the first replica's iterations)."""

    summary: dict[str, object]
    result: ServingResult
    recorder: Recorder
    title: str

    def figure(self) -> Figure:
        return serving_figure(self.result, self.recorder, self.title)


def simulate_serving(base: Scenario, requests: Iterator[Request], config: SchedulerConfig, engine: Engine,
                     slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                     output: Path | None = None, total: int | None = None,
                     speculation: Speculation | None = None, prefill_devices: int | None = None,
                     deployment: Deployment = Deployment()) -> ServingRun:
    """Serve `requests` on `base`'s model and hardware; with `output`, write requests.csv and serving.png.

    `prefill_devices` splits the chips: that many run prefill only, the rest decode. `deployment` replicates the
    scenario behind a router and adds a prefix cache and a host KV tier (each replica's own).
    """
    resolved = one_per_replica(base)
    devices = resolved.par.devices
    replicas = deployment.replicas
    if replicas < 1:
        raise PerfsimError(f"--replicas must be at least 1, got {replicas}")
    if replicas > 1 and prefill_devices is not None:
        raise PerfsimError("--replicas with --prefill-devices: disaggregate within one replica, or replicate it")
    disaggregation = None
    if prefill_devices is not None:
        base, disaggregation = _split(base, devices, prefill_devices, config, engine)
    capacity, per_token = kv_capacity_tokens(base, config.max_tokens, speculation.draft if speculation else None)
    cached = deployment.prefix_cache_tokens
    if not 0 <= cached < capacity:
        raise PerfsimError(f"--prefix-cache: {cached} tokens must be at least 0 and below the KV capacity of "
                           f"{capacity} tokens")
    capacity -= cached
    limit = _context_limit(resolved.model.name, resolved.model.max_context, capacity, config, disaggregation,
                           deployment.context_policy)
    requests = limit(iter(requests))
    tiers = _tiers(resolved, deployment, per_token, devices)
    costs = step_costs(base, engine, speculation)
    evaluations = costs.evaluations
    if speculation:
        config = replace(config, tokens_per_step=speculation.tokens_per_step)
    with ExitStack() as stack:
        table, picture = _open_outputs(stack, output) if output is not None else (None, None)
        recorder = Recorder(slo_ttft_s, slo_tpot_s, table)
        on_finish = _with_progress(recorder, total) if total and on_terminal() else recorder
        if replicas == 1 and deployment.router == "round-robin":
            cache, host = tiers()
            result = serve(requests, costs, capacity, config, on_finish, disaggregation, cache, host)
            servers = [(result, cache, host)]
            per_replica = None
        else:
            fleet = serve_fleet(requests, costs, capacity, config, replicas, deployment.router, on_finish, tiers,
                                slo_ttft_s, slo_tpot_s)
            servers = [(server.result, server.cache, server.host) for server in fleet.servers]
            result = fleet.merged()
            per_replica = fleet.per_replica(devices, waiting_power_w(resolved.chip))
        limit.check_served()
        hardware = resolved.system.name if resolved.system else resolved.chip.name
        totals = summary(result, recorder, devices * replicas, waiting_power_w(resolved.chip))
        if per_replica is not None:
            totals["mean_batch"] = fleet.mean_batch()
        run = ServingRun({**totals, "devices": devices * replicas,
                          "prefill_devices": prefill_devices, "kv_capacity_tokens": capacity,
                          "tokens_per_decode_step": config.tokens_per_step,
                          "kv_bytes_per_token_per_device": per_token,
                          "step_cost_evaluations": costs.evaluations - evaluations,
                          "engine": engine, "scheduler": config.policy, "dropped_requests": limit.dropped,
                          "clipped_requests": limit.clipped, **tier_summary(servers),
                          **({} if per_replica is None else {"replicas": replicas, "router": deployment.router,
                                                             "per_replica": per_replica})},
                         servers[0][0] if per_replica is not None else result, recorder,
                         f"{resolved.model.name} on {hardware}" + (f" · replica 0 of {replicas}" if per_replica
                                                                   else ""))
        if picture is not None:
            run.figure().savefig(picture, format="png")
    return run


_SHARED_COSTS: dict[tuple[str, str], StepCosts] | None = None


@contextmanager
def shared_step_costs() -> Iterator[None]:
    """Within this block, runs of one scenario share one step-cost memo (it is exact, so a capacity search's runs
    at many rates give what they would alone, faster; their step_cost_evaluations count only new estimates)."""
    global _SHARED_COSTS
    outer = _SHARED_COSTS
    _SHARED_COSTS = {} if outer is None else outer
    try:
        yield
    finally:
        _SHARED_COSTS = outer


def step_costs(base: Scenario, engine: Engine, speculation: Speculation | None) -> StepCosts:
    """The step costs of `base` on `engine`: a fresh memo, or the shared one inside shared_step_costs()."""
    if _SHARED_COSTS is None or speculation is not None:
        return StepCosts(base, engine, speculation)
    return _SHARED_COSTS.setdefault((base.model_dump_json(), engine), StepCosts(base, engine))


def _context_limit(model: str, max_context: int, capacity: int, config: SchedulerConfig,
                   disaggregation: Disaggregation | None, policy: str) -> ContextLimit:
    """The most tokens one request may have: the model's context, and what the KV cache of one replica (and of the
    prefill group) holds for a sequence alone (a reserving scheduler admits within its watermark). Raise PerfsimError
    for a KV-cache block as large as a cache."""
    caches = [capacity] + ([disaggregation.capacity] if disaggregation else [])
    if config.block_size >= min(caches):
        raise PerfsimError(f"--block-size {config.block_size}: a block must be smaller than the KV cache of one "
                           f"replica ({min(caches)} tokens)")
    room = min(math.floor(c * (1 - WATERMARK)) if config.reserves else c for c in caches) - config.block_size
    if max_context <= room:
        return ContextLimit(max_context, f"{model}'s max_context ({max_context})", policy)
    return ContextLimit(room, f"the KV cache one replica holds for a sequence ({room} tokens)", policy)


def _tiers(resolved: Resolved, deployment: Deployment, per_token: float, devices: int):
    """A factory of each replica's (prefix cache or None, host tier or None)."""
    host_tokens = 0
    seconds_per_token = 0.0
    if deployment.host_kv_bytes:
        if not (math.isfinite(deployment.host_kv_bytes) and deployment.host_kv_bytes > 0):
            raise PerfsimError(f"--host-kv must be a positive size, got {deployment.host_kv_bytes:g} bytes")
        link = host_link(resolved.chip.links, resolved.chip.name)
        seconds_per_token = per_token / (link.bandwidth_per_direction * link.count)
        host_tokens = int(deployment.host_kv_bytes // (per_token * devices))

    def make() -> tuple[PrefixCache | None, HostTier | None]:
        host = HostTier(host_tokens, seconds_per_token) if host_tokens else None
        cache = PrefixCache(deployment.prefix_cache_tokens, host) if deployment.prefix_cache_tokens else None
        return cache, host

    return make


def _split(base: Scenario, devices: int, prefill: int, config: SchedulerConfig,
           engine: Engine) -> tuple[Scenario, Disaggregation]:
    """The decode group's scenario, and the prefill group with its KV hand-over time per token.

    Each group keeps `base`'s tensor-parallel degree (capped at its size) and is data-parallel
    beyond it. A sequence's KV cache (2 · layers · KV heads · head_dim per token) crosses the
    interconnect that joins the two groups (joining_link), each prefill chip of a TP group sending its shard.
    """
    if not 0 < prefill < devices:
        raise PerfsimError(f"--prefill-devices must leave chips for decode: 0 < {prefill} < {devices}")

    def group(n: int) -> Scenario:
        return base.model_copy(update={"devices": n, "tp": min(base.tp, n), "dp": None, "ep": None,
                                       "expert_tp": None})

    prefill_base, decode_base = group(prefill), group(devices - prefill)
    r = one_per_replica(prefill_base)
    if r.system is None:
        raise PerfsimError("--prefill-devices needs a system (or --devices) to join the two groups")
    model = r.model
    kv_bytes = sum(2 * model.layer_kv_heads(i) * model.dim_per_head for i in range(model.layers)) * \
        resolve_format(r.kv_dtype).bits_per_element / 8
    link, sharing = joining_link(r.system.interconnects, devices)
    seconds = kv_bytes / (rank_bandwidth(link, 2, sharing) * r.par.tp)
    capacity, _ = kv_capacity_tokens(prefill_base, config.max_tokens)
    return decode_base, Disaggregation(StepCosts(prefill_base, engine), capacity, seconds)


def joining_link(interconnects: list[tuple[Interconnect, int]], devices: int) -> tuple[Interconnect, int]:
    """(the innermost interconnect whose span holds all `devices` chips, which therefore joins the prefill chips to
    the decode chips; how many chips share a member's links on it: 1 on the innermost level or a network, where
    each chip drives its own NIC, else the chips of a member)."""
    span = 1
    for level, (link, count) in enumerate(interconnects):
        member = span
        span *= count
        if span >= devices or level == len(interconnects) - 1:
            return link, 1 if level == 0 or link.network else member
    raise PerfsimError("--prefill-devices needs a system (or --devices) to join the two groups")


def _open_outputs(stack: ExitStack, directory: Path) -> tuple[IO[str], IO[bytes]]:
    """DIR/requests.csv and DIR/serving.png, opened before the run so that a bad path fails at once."""
    table, picture = directory / "requests.csv", directory / "serving.png"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return (stack.enter_context(table.open("w", newline="")), stack.enter_context(picture.open("wb")))
    except FileExistsError:
        raise PerfsimError(f"-o {directory}: not a directory") from None
    except OSError as err:
        raise PerfsimError(f"-o {directory}: cannot write {err.filename or directory} ({err.strerror})") from None


def _with_progress(recorder: Recorder, total: int, delay_s: float = 1.0):
    """`recorder`, drawing a progress bar of the `total` requests on stderr once the run has taken `delay_s`."""
    progress = Progress(total, "requests", delay_s)

    def on_finish(request: Request, first_token_s: float, end_s: float) -> None:
        recorder(request, first_token_s, end_s)
        progress.update(len(recorder.e2e))

    return on_finish

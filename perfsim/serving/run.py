"""One serving simulation end to end: costs, KV capacity, the scheduler, metrics and outputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from matplotlib.figure import Figure

from perfsim.cost.collectives import rank_bandwidth
from perfsim.cost.energy import waiting_power_w
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario, one_per_replica
from perfsim.models.step import Engine
from perfsim.progress import Progress, on_terminal
from perfsim.serving.arrivals import Request
from perfsim.serving.costs import Speculation, StepCosts, kv_capacity_tokens
from perfsim.serving.report import Recorder, serving_figure, summary
from perfsim.serving.scheduler import Disaggregation, SchedulerConfig, ServingResult, serve


@dataclass(frozen=True)
class ServingRun:
    """A finished serving simulation: its `summary` (as `serve --format json` prints it), the per-iteration
    record and the per-request latencies behind it."""

    summary: dict[str, object]
    result: ServingResult
    recorder: Recorder
    title: str

    def figure(self) -> Figure:
        return serving_figure(self.result, self.recorder, self.title)


def simulate_serving(base: Scenario, requests: Iterator[Request], config: SchedulerConfig, engine: Engine,
                     slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                     output: Path | None = None, total: int | None = None,
                     speculation: Speculation | None = None, prefill_devices: int | None = None) -> ServingRun:
    """Serve `requests` on `base`'s model and hardware; with `output`, write requests.csv and serving.png.

    `prefill_devices` splits the chips: that many run prefill only, the rest decode.
    """
    resolved = one_per_replica(base)
    devices = resolved.par.devices
    requests = _within_context(requests, resolved.model.name, resolved.model.max_context)
    disaggregation = None
    if prefill_devices is not None:
        base, disaggregation = _split(base, devices, prefill_devices, config, engine)
    capacity, per_token = kv_capacity_tokens(base, config.max_tokens, speculation.draft if speculation else None)
    costs = StepCosts(base, engine, speculation)
    if speculation:
        config = replace(config, tokens_per_step=speculation.tokens_per_step)
    with ExitStack() as stack:
        table, picture = _open_outputs(stack, output) if output is not None else (None, None)
        recorder = Recorder(slo_ttft_s, slo_tpot_s, table)
        on_finish = _with_progress(recorder, total) if total and on_terminal() else recorder
        result = serve(requests, costs, capacity, config, on_finish, disaggregation)
        hardware = resolved.system.name if resolved.system else resolved.chip.name
        run = ServingRun({**summary(result, recorder, devices, waiting_power_w(resolved.chip)), "devices": devices,
                          "prefill_devices": prefill_devices, "kv_capacity_tokens": capacity,
                          "tokens_per_decode_step": config.tokens_per_step,
                          "kv_bytes_per_token_per_device": per_token, "step_cost_evaluations": costs.evaluations,
                          "engine": engine}, result, recorder, f"{resolved.model.name} on {hardware}")
        if picture is not None:
            run.figure().savefig(picture, format="png")
    return run


def _split(base: Scenario, devices: int, prefill: int, config: SchedulerConfig,
           engine: Engine) -> tuple[Scenario, Disaggregation]:
    """The decode group's scenario, and the prefill group with its KV hand-over time per token.

    Each group keeps `base`'s tensor-parallel degree (capped at its size) and is data-parallel
    beyond it. A sequence's KV cache (2 · layers · KV heads · head_dim per token) crosses the
    system's innermost interconnect, each prefill chip of a TP group sending its shard.
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
    link = r.system.interconnects[0][0]
    seconds = kv_bytes / (rank_bandwidth(link, 2) * r.par.tp)
    capacity, _ = kv_capacity_tokens(prefill_base, config.max_tokens)
    return decode_base, Disaggregation(StepCosts(prefill_base, engine), capacity, seconds)


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


def _within_context(requests: Iterator[Request], model: str, max_context: int) -> Iterator[Request]:
    """The requests, each checked against the model's context length."""
    for request in requests:
        if request.prompt_len + request.output_len > max_context:
            raise PerfsimError(f"request {request.id}: {request.prompt_len} + {request.output_len} tokens exceed "
                               f"{model}'s max_context ({max_context})")
        yield request


def _with_progress(recorder: Recorder, total: int, delay_s: float = 1.0):
    """`recorder`, drawing a progress bar of the `total` requests on stderr once the run has taken `delay_s`."""
    progress = Progress(total, "requests", delay_s)

    def on_finish(request: Request, first_token_s: float, end_s: float) -> None:
        recorder(request, first_token_s, end_s)
        progress.update(len(recorder.e2e))

    return on_finish

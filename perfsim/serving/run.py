"""One serving simulation end to end: costs, KV capacity, the scheduler, metrics and outputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import Engine
from perfsim.serving.arrivals import Request
from perfsim.serving.costs import StepCosts, kv_capacity_tokens
from perfsim.serving.report import Recorder, summary, write_outputs
from perfsim.serving.scheduler import SchedulerConfig, serve


def simulate_serving(base: Scenario, requests: Iterator[Request], config: SchedulerConfig, engine: Engine,
                     slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
                     output: Path | None = None, total: int | None = None) -> dict[str, object]:
    """Serve `requests` on `base`'s model and hardware; with `output`, write requests.csv and serving.png."""
    devices = resolve(base.model_copy(update={"batch": base.dp or 1})).par.devices
    capacity, per_token = kv_capacity_tokens(base, config.max_tokens)
    costs = StepCosts(base, engine)
    with ExitStack() as stack:
        sink = None
        if output is not None:
            try:
                output.mkdir(parents=True, exist_ok=True)
                sink = stack.enter_context((output / "requests.csv").open("w", newline=""))
            except OSError as err:
                raise PerfsimError(f"cannot write to {output}: {err.strerror}") from None
        recorder = Recorder(slo_ttft_s, slo_tpot_s, sink)
        on_finish = _with_progress(recorder, total) if total and sys.stdout.isatty() and sys.stderr.isatty() \
            else recorder
        result = serve(requests, costs, capacity, config, on_finish)
    if output is not None:
        write_outputs(result, recorder, output)
    return {**summary(result, recorder, devices), "devices": devices, "kv_capacity_tokens": capacity,
            "kv_bytes_per_token_per_device": per_token, "step_cost_evaluations": costs.evaluations, "engine": engine}


def _with_progress(recorder: Recorder, total: int):
    step = max(1, total // 100)

    def on_finish(request: Request, first_token_s: float, end_s: float) -> None:
        recorder(request, first_token_s, end_s)
        done = len(recorder.e2e)
        if done % step == 0 or done == total:
            filled = 30 * done // total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} requests")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return on_finish

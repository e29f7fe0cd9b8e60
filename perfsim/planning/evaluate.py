"""One sweep point to one tidy row: what a worker runs (in a process pool or on a Dask worker).

A row is the point's fields (override paths as columns named by the path; a field the point gives is not
replaced by its result, e.g. `devices`), then the results with their
units (step_s, ttft_s, tpot_s, tokens_per_s, tokens_per_s_per_device, joules_per_token, memory bytes, cost
columns; serving: the summary flattened, ttft_p99_s ...; op: the op estimate flattened, time_s, flops, bytes,
utilization ...), then `reason`: None, or the one-line message of a
point that does not fit or is invalid (the sweep goes on). Hardware specs with overrides are memoised per
process, and so are the shipped specs and models (perfsim's loaders cache them).
"""

from __future__ import annotations

import functools
from typing import Any

from perfsim.errors import PerfsimError
from perfsim.planning import pricing
from perfsim.planning.sweep_spec import SERVING_FIELDS, Point

STEP_COLUMNS = ("devices", "parallelism_tp", "parallelism_pp", "parallelism_dp", "parallelism_ep", "step_s",
                "ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_device", "energy_j", "joules_per_token",
                "memory_bytes_per_device", "capacity_bytes", "bound", *pricing.columns(None, None))
"""The result columns of an analytic or des point, in order (NaN or None where the point has no result)."""


def evaluate_chunk(points: list[Point]) -> list[dict[str, Any]]:
    """One row per point, in order."""
    return [evaluate(point) for point in points]


def evaluate(point: Point) -> dict[str, Any]:
    """The point's fields, its results and `reason` (None, or why the point has no result)."""
    row: dict[str, Any] = {"point_id": point.point_id, **point.fields, **point.overrides}
    try:
        results = {"serving": _served, "op": _estimated}.get(point.mode, _stepped)(point)
        reason = None
    except PerfsimError as err:
        results, reason = dict.fromkeys(STEP_COLUMNS if point.mode in ("analytic", "des") else ()), str(err)
    return {**row, **{k: v for k, v in results.items() if k not in row}, "reason": reason}


@functools.lru_cache(maxsize=256)
def overridden(name: str, changes: tuple[tuple[str, Any], ...]) -> Any:
    """The hardware spec `name` with each (dotted path, value) of `changes` applied in turn."""
    from perfsim.api import hardware
    from perfsim.planning.overrides import with_field

    spec = hardware(name)
    for path, value in changes:
        spec = with_field(spec, path, value)
    return spec


def _hardware(point: Point) -> Any:
    name = point.fields.get("hardware")
    if not isinstance(name, str):
        raise PerfsimError(f"hardware: expected a name or path, got {name!r}")
    return overridden(name, tuple((path, _hashable(value)) for path, value in point.overrides.items()))


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _stepped(point: Point) -> dict[str, Any]:
    from perfsim.api import scenario_of
    from perfsim.models.step import estimate_step

    spec = _hardware(point)
    estimate = estimate_step(scenario_of(point.fields), hardware=spec, engine=point.mode)  # type: ignore[arg-type]
    r, memory = estimate.resolved, estimate.memory
    step_s = estimate.step_s
    tokens_per_s = estimate.tokens / step_s
    energy = estimate.energy_j
    decode = r.scenario.phase == "decode"
    return {"devices": r.par.devices, "parallelism_tp": r.par.tp, "parallelism_pp": r.par.pp,
            "parallelism_dp": r.par.dp, "parallelism_ep": r.par.ep, "step_s": step_s,
            "ttft_s": None if decode else step_s, "tpot_s": step_s / estimate.tokens_per_sequence if decode else None,
            "tokens_per_s": tokens_per_s, "tokens_per_s_per_device": tokens_per_s / r.par.devices,
            "energy_j": energy, "joules_per_token": None if energy is None else energy / estimate.tokens,
            "memory_bytes_per_device": memory.total_bytes, "capacity_bytes": memory.capacity_bytes,
            "bound": estimate.bound,
            **pricing.columns(pricing.per_hour(pricing.price_per_device_hour(spec), r.par.devices), tokens_per_s)}


def _estimated(point: Point) -> dict[str, Any]:
    from perfsim.api import estimate, flat_record

    if not isinstance(point.fields.get("op"), str):
        raise PerfsimError(f"op: expected an op string as given to --op, got {point.fields.get('op')!r}")
    return flat_record(estimate(point.fields["op"], _hardware(point)).summary)


def _served(point: Point) -> dict[str, Any]:
    from perfsim.api import flat_record, serve

    scenario = {k: v for k, v in point.fields.items() if k not in SERVING_FIELDS}
    settings = {k: v for k, v in point.fields.items() if k in SERVING_FIELDS}
    summary = flat_record(serve(scenario=scenario, **settings).summary)
    tokens_per_s = summary.get("throughput_tokens_per_s")
    hourly = pricing.per_hour(pricing.price_per_device_hour(_hardware(point)), int(summary["devices"]))
    return {**summary, **pricing.columns(hourly, tokens_per_s)}

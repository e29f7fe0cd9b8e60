"""The sweep YAML and its expansion into points.

    mode: analytic              # analytic | des (one model step each) | serving (a serving simulation each)
                                # | op (one op string each, as `estimate --op`: a kernel or a network)
    base: {model: llama-3-70b, prompt_len: 1024}     # fields every point shares
    axes:                       # the product of every axis
      hardware: [dgx-h100, mi300x-node]
      tp: [2, 4, 8]
      batch: [1, 16, 64]
      phase: [prefill, decode]
    points:                     # a listed set, each combined with every product point (optional)
      - {devices: 4}
      - {devices: 8}
    hardware_overrides:         # dotted spec paths, each a product axis, applied through the spec's validation
      memory.hbm.bandwidth: [3.35 TB/s, 4.8 TB/s]

Fields are Scenario fields (model, hardware, devices, tp, pp, ep, batch, phase, weight_dtype, kv_dtype, ...)
and, in serving mode, the serving settings (rate, requests, prompt_len, output_len, seed, slo_ttft, slo_tpot,
max_batch, max_tokens) in place of phase, batch, context and micro_batches; in op mode, `hardware` and `op`
(e.g. an array-shape sweep of a MAC-array engine: workloads/sweeps/tpe-array-shapes.yaml). A point is a mapping of those
fields and of the override paths; its `point_id` hashes the mode and every field, so a results file keeps
finished points across runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from perfsim.errors import PerfsimError
from perfsim.hardware.common import Spec
from perfsim.specfile import read_yaml, validate

Mode = Literal["analytic", "des", "serving", "op"]
SERVING_FIELDS = ("rate", "requests", "prompt_len", "output_len", "seed", "slo_ttft", "slo_tpot", "max_batch",
                  "max_tokens")
"""Settings of api.serve a serving point takes besides its scenario."""
NOT_SERVED = ("phase", "batch", "context", "micro_batches")
"""Scenario fields a serving simulation sets itself, so a serving sweep cannot give them."""
MAX_POINTS = 10_000_000


class SweepSpec(Spec):
    """A sweep: `base` fields, the product of `axes` and `hardware_overrides`, times the `points` listed."""

    mode: Mode = Field("analytic", description="analytic or des (one step per point), serving (a simulation) or op "
                                               "(one op string per point)")
    description: str | None = None
    base: dict[str, Any] = Field({}, description="fields every point shares")
    axes: dict[str, list[Any]] = Field({}, description="field → values; the sweep is their product")
    points: list[dict[str, Any]] = Field([], description="listed field sets, each combined with the product")
    hardware_overrides: dict[str, list[Any]] = Field({}, description="dotted spec path → values, product axes")


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its fields (scenario and serving settings) and its spec overrides."""

    fields: dict[str, Any]
    overrides: dict[str, Any]
    mode: Mode

    @property
    def point_id(self) -> str:
        """16 hex digits naming the point: the same fields and mode give the same id in every run."""
        text = json.dumps([self.mode, self.fields, self.overrides], sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> SweepSpec:
    """A sweep file validated; Raise PerfsimError naming the file and field for a bad one."""
    spec = validate(SweepSpec, read_yaml(Path(path)), str(path))
    check_fields(spec, str(path))
    return spec


def allowed_fields(mode: Mode) -> list[str]:
    from perfsim.models.scenario import Scenario

    if mode == "op":
        return ["hardware", "op"]
    scenario = [name for name in Scenario.model_fields if mode != "serving" or name not in NOT_SERVED]
    return [*scenario, *(f for f in SERVING_FIELDS if mode == "serving" and f not in scenario)]


def check_fields(spec: SweepSpec, origin: str) -> None:
    """Raise PerfsimError naming `origin` and the field for a field the sweep's mode does not take, an empty axis,
    a sweep without a model or hardware, or an override no hardware of the sweep takes."""
    allowed = allowed_fields(spec.mode)
    given = [("base", spec.base), ("axes", spec.axes), *((f"points[{i}]", p) for i, p in enumerate(spec.points))]
    for where, fields in given:
        for name in fields:
            if name not in allowed:
                raise PerfsimError(f"{origin}: {where}.{name}: not a field of a {spec.mode} sweep "
                                   f"(fields: {', '.join(allowed)})")
    for where, axes in (("axes", spec.axes), ("hardware_overrides", spec.hardware_overrides)):
        for name, values in axes.items():
            if not values:
                raise PerfsimError(f"{origin}: {where}.{name}: an axis needs at least one value")
    if spec.hardware_overrides and spec.mode == "serving":
        raise PerfsimError(f"{origin}: hardware_overrides: a serving simulation takes hardware by name or path; "
                           "sweep overrides in analytic or des mode (or write each spec to a file)")
    for required in ("op" if spec.mode == "op" else "model", "hardware"):
        listed = bool(spec.points) and all(required in p for p in spec.points)
        if required not in spec.base and required not in spec.axes and not listed:
            raise PerfsimError(f"{origin}: {required}: give it in base, axes or every listed point")
    if size(spec) > MAX_POINTS:
        raise PerfsimError(f"{origin}: {size(spec):,} points; at most {MAX_POINTS:,} in one sweep")
    _check_overrides(spec, origin)


def _check_overrides(spec: SweepSpec, origin: str) -> None:
    """Raise PerfsimError for an override whose first value fails on every hardware of the sweep that loads (a typo
    in its path would otherwise be every point's reason); one failing on some hardware is those points' reason."""
    from perfsim.api import hardware
    from perfsim.planning.overrides import with_field

    refs = [spec.base.get("hardware"), *spec.axes.get("hardware", []), *(p.get("hardware") for p in spec.points)]
    loaded = []
    for ref in dict.fromkeys(ref for ref in refs if isinstance(ref, str)):
        try:
            loaded.append(hardware(ref))
        except PerfsimError:
            continue  # an unknown hardware is its points' reason
    for path, values in spec.hardware_overrides.items():
        errors = []
        for one in loaded:
            try:
                with_field(one, path, values[0])
                break
            except PerfsimError as err:
                errors.append(err)
        else:
            if errors:
                raise PerfsimError(f"{origin}: hardware_overrides.{errors[0]}")


def size(spec: SweepSpec) -> int:
    """How many points the sweep has."""
    count = max(1, len(spec.points))
    for values in (*spec.axes.values(), *spec.hardware_overrides.values()):
        count *= len(values)
    return count


def expand(spec: SweepSpec) -> list[Point]:
    """Every point: `base`, then each listed point, then the product axes (later ones win a shared field)."""
    names, overrides = list(spec.axes), list(spec.hardware_overrides)
    listed = spec.points or [{}]
    product = itertools.product(listed, itertools.product(*spec.axes.values()),
                                itertools.product(*spec.hardware_overrides.values()))
    return [Point({**spec.base, **one, **dict(zip(names, values, strict=True))},
                  dict(zip(overrides, changes, strict=True)), spec.mode)
            for one, values, changes in product]

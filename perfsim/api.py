"""The Python API, for notebooks and scripts: `import perfsim as ps`.

    ps.hardware("h100-sxm")                                   a Device or System spec
    ps.model("llama-3-70b")                                   a ModelSpec
    ps.estimate("gemm m=4096 n=4096 k=4096", "h100-sxm")      OpResult
    ps.estimate({"model": "llama-3-8b", "phase": "decode"}, "h100-sxm")   StepResult
    ps.step("llama-3-70b", "dgx-h100", tp=8, batch=64)        StepResult
    ps.serve("llama-3-70b", "dgx-h100", tp=8, rate=20)        ServeResult
    ps.offloaded("mixtral-8x7b", "host-8380x2-a40", offload="moe-lens", batch=4096)   OffloadResult
    ps.sweep("workloads/sweeps/llama-3-70b.yaml", workers=2)  SweepResult
    ps.plan("llama-3-70b", rate=20, slo_ttft="2s", slo_tpot="50ms", candidates=["h100-sxm", "mi300x"])   PlanResult
    ps.roofline("h100-sxm", ops=[...], compare=["mi300x"])    RooflineResult
    ps.validate()                                             ValidationResult
    ps.train("llama-3-70b", "h100-cluster", tp=8, pp=8, global_batch=1024)   TrainResult

and, in perfsim.api (what the other CLI commands print):

    api.max_rate("llama-3-8b", "h100-sxm", slo_ttft="2s", slo_tpot="50ms")   RateSearchResult (serve --max-rate)
    api.verify()                                              VerifyResult
    api.hardware_list(), api.model_list()                     one row per spec on the search path
    api.hardware_info("h100-sxm"), api.model_info("llama-3-70b")   one spec's fields, as `show` prints them
    api.schema("hardware")                                    a spec format's JSON schema
    api.notes("gap8")                                         what to know about estimates on a device

Hardware is a shipped name, a path to a YAML file, or a spec object (`ps.hardware(...)`,
possibly changed with `model_copy`). Every result has `.summary` (a dict, as `--format json`
prints it), `.to_frame()` (a tidy pandas DataFrame, numeric columns named with their units)
and `.plot()` where a picture fits (a matplotlib Figure); `.notes` are the lines worth knowing about
the numbers (the CLI prints them on stderr as warnings). The CLI is a thin layer over these.
User mistakes raise `PerfsimError` (a ValueError) with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfsim.errors import PerfsimError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from perfsim.cost import Cache, OpCost
    from perfsim.hardware import Device, System
    from perfsim.models.scenario import Scenario
    from perfsim.models.spec import ModelSpec
    from perfsim.models.step import StepEstimate
    from perfsim.ops import OpBase
    from perfsim.planning.search import Choice, Demand
    from perfsim.planning.sweep_spec import SweepSpec
    from perfsim.serving.arrivals import Request
    from perfsim.serving.capacity import RateSearch
    from perfsim.serving.run import ServingRun
    from perfsim.training.result import TrainResult

MAX_REQUESTS = 10**8
MAX_SETTING = 2**31 - 1  # the largest max_batch, max_tokens, block_size, draft_len, prefill_devices
MAX_REPLICAS = 10**5  # each replica is simulated (10^5 take seconds); 2^31 would exhaust memory


def hardware(ref: str | Path | Device | System) -> Device | System:
    """A device or system spec: a shipped name, a path to a YAML file, or a spec object (returned as is)."""
    if not isinstance(ref, str | Path):
        return ref
    from perfsim.hardware import load_hardware

    return load_hardware(str(ref))


def model(ref: str | Path) -> ModelSpec:
    """A model spec: a shipped name, a path to a YAML file or a Hugging Face config.json."""
    from perfsim.models import load_model

    return load_model(str(ref))


def op(text: str) -> OpBase:
    """An op from the text `estimate --op` takes: `"gemm m=4096 n=4096 k=4096 dtype=bf16"`."""
    from perfsim.ops import parse_op

    return parse_op(text)


def notes(hardware_ref: str | Path | Device | System) -> list[str]:
    """What a reader of estimates on this hardware should know, one line each: an uncalibrated accelerator or CPU
    (a system's chip, and its host CPU) names the calibration fields it lacks and the default derating that stands
    in for them."""
    from perfsim.cost import derating, roofline

    spec = hardware(hardware_ref)
    compute = f"compute {derating.DEFAULT_COMPUTE_EFFICIENCY:g}"
    defaults = {"compute_efficiency": compute, "unit_efficiency": compute,
                "memory_efficiency": f"memory {derating.DEFAULT_MEMORY_EFFICIENCY:g}",
                "op_overhead": f"launch {derating.DEFAULT_LAUNCH_S * 1e6:g} µs",
                "sustained_clock": f"all-core clock {roofline.DEFAULT_CPU_CLOCK_RATIO:g} × peak"}
    lines = []
    for chip in (spec.device, getattr(spec, "host", None)):
        if chip is None or chip.kind not in ("accelerator", "cpu"):
            continue
        fields = derating.uncalibrated_fields(chip)  # type: ignore[arg-type]
        if fields:
            used = ", ".join(dict.fromkeys(defaults[field.split(".")[0]] for field in fields))
            lines.append(f"{chip.name} is uncalibrated (no {', '.join(f'calibration.{f}' for f in fields)}); "
                         f"default derating: {used}")
    return lines


def matrix_fallback_notes(chip: Device, ops: Iterable[OpBase]) -> list[str]:
    """One line per dtype whose matrix work (GEMMs, attention) no matrix unit of the accelerator `chip` runs, so
    that it falls back to other units (perfsim.cost.roofline.compute_unit): the 310P's bf16 on its fp32 vector
    units. Other kinds price their matrix work their own way: none."""
    from perfsim.cost.roofline import compute_unit

    matrix = [unit for unit in chip.compute if unit.role == "matrix"]
    if chip.kind != "accelerator" or not matrix:
        return []
    lines = []
    for dtype in dict.fromkeys(op.compute_dtype for op in ops if any(e == "matrix" for e, _ in op.work())):
        used, unit, _ = compute_unit(chip, "matrix", dtype)
        if unit.role != "matrix":
            runs = ", ".join(dict.fromkeys(d for u in matrix for d in u.dtypes))
            rate = f" at {used} rate" if used != dtype else ""
            lines.append(f"{chip.name} has no {dtype} matrix peak: {dtype} GEMMs run on the {unit.name} units{rate}; "
                         f"use a dtype its matrix units run ({runs})")
    return lines


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(records)


def flat_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One level, nested dicts as columns with their unit last: memory_s.hbm → memory_hbm_s,
    bytes_per_level.hbm → hbm_bytes, ttft_s.p50 → ttft_p50_s; under a key without a unit the names
    follow it: memory.kv_bytes → memory_kv_bytes, parallelism.tp → parallelism_tp. Lists are dropped."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            continue
        if not isinstance(value, dict):
            row[key] = value
            continue
        items = {name.replace(":", "_"): v for name, v in value.items() if not isinstance(v, dict | list)}
        if key == "bytes_per_level":
            row.update({f"{name}_bytes": v for name, v in items.items()})
        elif "_" in key:
            stem, _, unit = key.rpartition("_")
            row.update({f"{stem}_{name}_{unit}": v for name, v in items.items()})
        else:
            row.update({f"{key}_{name}": v for name, v in items.items()})
    return row


@dataclass(frozen=True)
class OpResult:
    """One op costed on one chip (a collective: on a system's links)."""

    op: OpBase
    hardware: Device | System
    cost: OpCost

    @property
    def time_s(self) -> float:
        return self.cost.time_s

    @property
    def bound(self) -> str:
        return self.cost.bound

    @property
    def summary(self) -> dict[str, Any]:
        from perfsim.cost import bus_bandwidth
        from perfsim.ops import Collective

        record: dict[str, Any] = {"hardware": self.hardware.name, **self.cost.as_dict()}
        if isinstance(self.op, Collective):
            record["group"] = self.op.group or self.hardware.chips
            record["algorithm_bandwidth_bytes_per_s"] = self.op.size_bytes / self.cost.time_s
            record["bus_bandwidth_bytes_per_s"] = bus_bandwidth(self.op, self.hardware, self.cost.time_s)
        return record

    @property
    def notes(self) -> list[str]:
        """What to know about this number (see notes()); none for a collective, priced on the links."""
        from perfsim.ops import Collective

        return [] if isinstance(self.op, Collective) else notes(self.hardware) + matrix_fallback_notes(
            self.hardware.device, [self.op])

    def to_frame(self) -> pd.DataFrame:
        """One row: time, bound, counts and the seconds of every resource."""
        return _frame([flat_record(self.summary)])

    def plot(self) -> Figure:
        """The op on its chip's roofline."""
        return roofline(self.hardware, ops=[self.op]).figure


class StepView:
    """What a step result and a training result share, read off their `estimate` (a step estimate with
    `summary()` and `step_s`): `summary`, `step_s`, `bound`, `notes`, `records()` and `to_frame()`."""

    estimate: Any

    @property
    def summary(self) -> dict[str, Any]:
        return self.estimate.summary()

    @property
    def step_s(self) -> float:
        return self.estimate.step_s

    @property
    def bound(self) -> str:
        return self.estimate.bound

    @property
    def notes(self) -> list[str]:
        """What to know about these numbers (see notes())."""
        return notes(self._hardware())

    def _hardware(self) -> Device | System:
        """The spec the notes are of."""
        raise NotImplementedError

    def _rows(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """The records() rows of the step whose summary is `summary`."""
        raise NotImplementedError

    def records(self, step_columns: bool = False) -> list[dict[str, Any]]:
        """One record per op (see each result's _rows). With `step_columns`, each record starts with the step's own
        fields (model, hardware, parallelism, step_s, memory, ...; its binding resource as `step_bound`), the same
        on every row: one tidy table that many steps concatenate into (`--format csv` of a step)."""
        summary = self.summary
        rows = self._rows(summary)
        if not step_columns:
            return rows
        step = {("step_bound" if key == "bound" else key): value for key, value in flat_record(summary).items()
                if not key.startswith("critical_path_")}
        return [{**step, **row} for row in rows]

    def to_frame(self, step_columns: bool = False) -> pd.DataFrame:
        """records() as a DataFrame: one row per op (with the step's fields on each if `step_columns`)."""
        return _frame(self.records(step_columns))


@dataclass(frozen=True)
class StepResult(StepView):
    """One prefill or decode step of a model on its hardware (`estimate` is the underlying StepEstimate)."""

    estimate: StepEstimate

    @property
    def notes(self) -> list[str]:
        """notes(), and the dtypes whose GEMMs fall off the matrix units (matrix_fallback_notes)."""
        ops = [traced.op for traced in self.estimate.trace.ops]
        return super().notes + matrix_fallback_notes(self.estimate.resolved.chip, ops)

    def _hardware(self) -> Device | System:
        resolved = self.estimate.resolved
        return resolved.system or resolved.chip

    def _rows(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """Per op name: its time over the step (`time_s`), FLOPs, bytes, count, binding resource and, with
        engine="des", its time on the critical path (`critical_path_s`)."""
        critical = summary.get("critical_path_s") or {}
        return [{**row, "critical_path_s": critical[row["op"]]} if row["op"] in critical else row
                for row in self.estimate.breakdown()]

    def write_timeline(self, directory: str | Path) -> list[Path]:
        """Write DIR/trace.json (Chrome trace), DIR/gantt.png and DIR/timeline.csv (engine="des"); return the paths.

        Raise PerfsimError if the directory cannot be written.
        """
        from perfsim.engine.export import write_timeline

        directory = Path(directory)
        try:
            write_timeline(self.timeline(), directory, self.title)
        except OSError as err:
            raise PerfsimError(f"cannot write to {directory}: {err.strerror}") from None
        return [directory / name for name in ("trace.json", "gantt.png", "timeline.csv")]

    def timeline(self) -> pd.DataFrame:
        """The discrete-event schedule (engine="des"): one row per op execution and chip."""
        if self.estimate.schedule is None:
            raise PerfsimError("a timeline needs engine='des'")
        return self.estimate.schedule.timeline()

    def gantt(self) -> Figure:
        from perfsim.engine.export import gantt

        return gantt(self.timeline(), self.title)

    @property
    def title(self) -> str:
        r = self.estimate.resolved
        return f"{r.model.name} {r.scenario.phase} on {(r.system or r.chip).name}"

    def plot(self) -> Figure:
        """Every distinct op of the step on its chip's roofline."""
        return roofline(self.estimate.resolved.chip, step=self).figure


def scenario_of(what: Scenario | Mapping[str, Any] | str | Path, spec: str | Path | Device | System | None = None,
                fields: Mapping[str, Any] | None = None) -> Scenario:
    """A Scenario from an object, a mapping or a scenario YAML file, with `fields` (None values ignored) and the
    hardware `spec` (its name or path) over it. Raise PerfsimError naming the file and field for a bad one."""
    from perfsim.models.scenario import Scenario
    from perfsim.specfile import read_yaml, validate

    label = "scenario"
    if isinstance(what, Scenario):
        data = what.model_dump(exclude_unset=True)
    elif isinstance(what, Mapping):
        data = dict(what)
    else:
        data, label = read_yaml(Path(what)), str(what)
    data.update({k: v for k, v in (fields or {}).items() if v is not None})
    if spec is not None:
        data["hardware"] = str(spec) if isinstance(spec, str | Path) else spec.name
    for required in ("model", "hardware"):
        if required not in data:
            raise PerfsimError(f"{label}: {required}: missing required field")
    return validate(Scenario, data, label)


def _chip_spec(spec: Device | System, cores: int | None) -> Device | System:
    """`spec`, or its chip limited to `cores` cores when given (a CPU or MCU)."""
    if cores is None:
        return spec
    from perfsim.models.scenario import with_cores

    return with_cores(spec.device, cores)


def estimate(what: OpBase | str | Scenario | Mapping[str, Any] | Path,
             hardware_ref: str | Path | Device | System | None = None, *, cache: Cache = "cold",
             cores: int | None = None, engine: str | None = None, **fields: Any) -> OpResult | StepResult:
    """Estimate an op (an Op or an op string) or a model step (a Scenario, a mapping of its fields or a
    scenario YAML path); `fields` are scenario fields (tp=8, batch=64, phase="prefill", ...). An offloaded
    scenario (`offload:`) gives an OffloadResult (see offloaded)."""
    from perfsim.ops import OpBase

    if isinstance(what, str) and not what.endswith((".yaml", ".yml")):
        what = op(what)
    if isinstance(what, OpBase):
        if fields or engine is not None:
            given = ", ".join([*fields, *(["engine"] if engine is not None else [])])
            raise PerfsimError(f"{given} cannot apply to an op estimate (they are scenario settings)")
        if hardware_ref is None:
            raise PerfsimError("an op estimate needs hardware")
        from perfsim.cost import cost
        from perfsim.ops import Collective

        if cores is not None and isinstance(what, Collective):
            raise PerfsimError("--cores does not apply to a collective: it runs on the system's links")
        spec = _chip_spec(hardware(hardware_ref), cores)
        return OpResult(what, spec, cost(what, spec, cache))
    spec = hardware(hardware_ref) if hardware_ref is not None else None
    scenario = scenario_of(what, spec, {**fields, "cores": cores})
    if scenario.offload is not None:
        return offloaded(scenario=scenario, hardware_ref=spec, cache=cache)  # type: ignore[return-value]
    return step(scenario=scenario, hardware_ref=spec, cache=cache, engine=engine)


def step(model_ref: str | None = None, hardware_ref: str | Path | Device | System | None = None, *,
         scenario: Scenario | None = None, cache: Cache = "cold", engine: str | None = None,
         **fields: Any) -> StepResult:
    """One model step: `ps.step("llama-3-8b", "h100-sxm", phase="prefill", prompt_len=2048)`.

    `engine`: "analytic" (ops added up) or "des" (discrete-event simulation); default des on several
    chips, analytic on one.
    """
    from perfsim.models.scenario import resolve
    from perfsim.models.step import estimate_step

    spec = hardware(hardware_ref) if hardware_ref is not None else None
    if scenario is None:
        scenario = scenario_of({"model": model_ref} if model_ref else {}, spec, fields)
    if scenario.offload is not None:
        raise PerfsimError("an offloaded scenario (offload:) is estimated by ps.offloaded or ps.estimate, not as a "
                           "step")
    resolved = resolve(scenario, spec)
    chosen = engine or ("des" if resolved.par.devices > 1 else "analytic")
    if chosen not in ("analytic", "des"):
        raise PerfsimError(f"engine: '{chosen}' is not one of analytic, des")
    return StepResult(estimate_step(resolved, cache, engine=chosen))  # type: ignore[arg-type]


@dataclass(frozen=True)
class OffloadResult:
    """An offloaded scenario (weights and KV in host memory, MoE-Lens): the bound, the simulation, the binding
    resource (`estimate` is the underlying perfsim.offload.estimate.OffloadEstimate)."""

    estimate: Any

    @property
    def summary(self) -> dict[str, Any]:
        return self.estimate.summary()

    @property
    def bound(self) -> str:
        """The resource that binds the MoE-Lens bound at this batch."""
        return self.estimate.bound.bound

    @property
    def notes(self) -> list[str]:
        """notes() of the GPU and of the host CPU (whose sustained rate prices CPU attention and the bound's CPU)."""
        return notes(self.estimate.resolved.chip) + notes(self.estimate.host.cpu)

    def sweep(self, batches: Iterable[int], simulate: bool = False) -> pd.DataFrame:
        """One row per batch: tokens, bound_tokens_per_s, each ceiling's tokens/s, the binding resource, fits, and
        with `simulate` simulated_tokens_per_s."""
        from perfsim.offload.estimate import sweep

        scenario = self.estimate.resolved.scenario.model_copy(update={"micro_batches": 1})
        return _frame(sweep(scenario, list(batches), simulate=simulate))

    def to_frame(self) -> pd.DataFrame:
        """The summary as one row (the ceilings as <resource>_tokens_per_s columns)."""
        return _frame([flat_record(self.summary)])

    def plot(self, batches: Iterable[int] | None = None, simulate: Iterable[int] = ()) -> Figure:
        """Throughput against batch tokens: the link, GPU and host-DRAM ceilings, the bound, the batch host memory
        allows, the GPU-saturating tokens (Eq. 2) and the simulated throughput at the `simulate` batches."""
        from perfsim.offload.plot import plot_bound

        return plot_bound(self.estimate, batches, list(simulate))


def offloaded(model_ref: str | None = None, hardware_ref: str | Path | Device | System | None = None, *,
            scenario: Scenario | Mapping[str, Any] | Path | None = None, cache: Cache = "cold",
            simulate: bool = True, **fields: Any) -> OffloadResult:
    """An offloaded scenario: `ps.offloaded("mixtral-8x7b", "host-8380x2-a40", offload="moe-lens", batch=4096)`.

    The hardware is a system spec with a host; the scenario's `offload` (default `moe-lens`) places weights, KV
    cache and attention. `simulate`: also run the discrete-event iteration.
    """
    from perfsim.offload.estimate import estimate_offload

    spec = hardware(hardware_ref) if hardware_ref is not None else None
    base: Any = scenario if scenario is not None else ({"model": model_ref} if model_ref else {})
    chosen = scenario_of(base, spec, fields)
    if chosen.offload is None:
        chosen = scenario_of(chosen, None, {"offload": "moe-lens"})
    return OffloadResult(estimate_offload(chosen, spec, cache, simulate))


@dataclass(frozen=True)
class ServeResult:
    """A serving simulation: `summary` as `serve --format json` prints it; per-request latencies behind it."""

    run: ServingRun
    notes: tuple[str, ...] = ()
    """What to know about these numbers (see notes())."""

    @property
    def summary(self) -> dict[str, Any]:
        return self.run.summary

    def to_frame(self) -> pd.DataFrame:
        """One row per finished request (in finishing order): ttft_s, tpot_s (NaN for one output token), e2e_s."""
        import numpy as np
        import pandas as pd

        recorder = self.run.recorder
        return pd.DataFrame({name: np.frombuffer(getattr(recorder, name.removesuffix("_s")), dtype=float)
                             for name in ("ttft_s", "tpot_s", "e2e_s")})

    def plot(self) -> Figure:
        """Latency CCDFs with p50/p99 and the SLOs, batch and queue over time, KV-cache use over time."""
        return self.run.figure()

    def replicas_frame(self) -> pd.DataFrame:
        """One row per replica (its requests, latency percentiles, throughput, batch, cache counts); one row
        for a single replica, its summary's."""
        import pandas as pd

        rows = self.summary.get("per_replica") or [{"replica": 0, **self.summary}]
        return pd.DataFrame([flat_record(row) for row in rows])


@dataclass(frozen=True)
class RateSearchResult:
    """A capacity search: `summary` as `serve --max-rate --format json` prints it; the goodput curve behind it."""

    search: RateSearch
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> dict[str, Any]:
        return self.search.summary()

    def to_frame(self) -> pd.DataFrame:
        """One row per probed rate: rate_rps, goodput_requests_per_s, throughput, the percentiles, meets_slo."""
        return self.search.to_frame()

    def plot(self) -> Figure:
        """Goodput against the offered rate, the answer marked."""
        return self.search.figure()


def duration(value: float | str | None, what: str) -> float | None:
    """A positive finite time in seconds from 2, '2', '2s', '150ms' or '150 us' (a bare number is seconds)."""
    if value is None:
        return None
    from perfsim.units import UnitError, parse_quantity

    try:
        number: float | None = float(value)
    except ValueError:
        number = None
    try:
        seconds = parse_quantity(value if number is None else number, "time")
    except UnitError as err:
        raise PerfsimError(f"--{what}: {err}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise PerfsimError(f"--{what}: must be a positive finite time, got {value}")
    return seconds


def bounded(name: str, value: int | None, low: int, high: int) -> None:
    """Raise PerfsimError if a given setting is not an integer in [low, high], naming its flag (a 400-digit number
    shown elided)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:20]}… ({len(str(value))} digits)"
        raise PerfsimError(f"--{name.replace('_', '-')} must be {low} to {high:,}, got {shown}")


def serve(model_ref: str | None = None, hardware_ref: str | Path | Device | System | None = None, *,
          scenario: Scenario | Mapping[str, Any] | Path | None = None, rate: float = 1.0, requests: int = 100,
          prompt_len: int | str = 512, output_len: int | str = 128, seed: int = 0,
          trace: str | Path | Iterable[Request] | None = None, slo_ttft: float | str | None = None,
          slo_tpot: float | str | None = None, max_batch: int = 256, max_tokens: int = 8192,
          chunked_prefill: bool = True, block_size: int = 16, engine: str = "analytic",
          draft_model: str | None = None, draft_len: int = 4, prefill_devices: int | None = None,
          output: str | Path | None = None, progress: bool = False, arrivals: str = "poisson", replicas: int = 1,
          router: str = "round-robin", scheduler: str = "vllm", preemption: str = "recompute",
          prefix_cache: int = 0, host_kv: float | str | None = None, context_policy: str = "drop",
          **fields: Any) -> ServeResult:
    """Serve arrivals at a mean `rate` (or a CSV/JSONL `trace`, or Request objects) with continuous batching.

    Lengths are a number or `uniform:LO:HI`, `exponential:MEAN`, `normal:MEAN:STD`,
    `lognormal:MEDIAN:SIGMA`; SLOs are seconds or strings with units ('2s', '150ms'). `output`
    writes DIR/requests.csv and DIR/serving.png; `progress` draws a bar on a terminal. `arrivals` is `poisson`,
    `gamma:CV`, `onoff:ON_S:OFF_S` or `diurnal:AMPLITUDE:PERIOD_S`; `replicas` copies of the scenario sit behind
    `router`; `scheduler` is vllm, sarathi, orca or static; each replica sets aside `prefix_cache` KV tokens for
    shared prefixes and has `host_kv` of host memory ('64 GiB', or bytes) as a KV tier, where `preemption='swap'`
    puts preempted caches; requests beyond a replica are dropped or clipped (`context_policy`) and counted.
    """
    from perfsim.serving.run import simulate_serving

    slo_ttft_s, slo_tpot_s = duration(slo_ttft, "slo-ttft"), duration(slo_tpot, "slo-tpot")
    base, requests_in, total, config, speculation, deployment = _serving_setup(
        model_ref, hardware_ref, scenario, rate, requests, prompt_len, output_len, seed, trace, max_batch,
        max_tokens, chunked_prefill, block_size, engine, draft_model, draft_len, prefill_devices, arrivals, replicas,
        router, scheduler, preemption, prefix_cache, host_kv, context_policy, fields)
    run = simulate_serving(base, requests_in, config, engine, slo_ttft_s, slo_tpot_s,  # type: ignore[arg-type]
                           Path(output) if output is not None else None, total if progress else None,
                           speculation, prefill_devices, deployment)
    dropped = run.summary["dropped_requests"]
    were = "request was" if dropped == 1 else "requests were"
    skipped = (f"{dropped} {were} dropped: their prompt + output exceed what a replica serves "
               "(dropped_requests; --context-policy clip truncates them instead)",) if dropped else ()
    return ServeResult(run, (*notes(base.hardware), *skipped))


def max_rate(model_ref: str | None = None, hardware_ref: str | Path | None = None, *,
             slo_ttft: float | str | None = None, slo_tpot: float | str | None = None, percentile: float = 99,
             rate_range: tuple[float, float] | None = None, rate: float = 1.0, **settings: Any) -> RateSearchResult:
    """The highest mean arrival rate whose `percentile` TTFT and TPOT meet the SLOs, by bisection
    (perfsim.serving.capacity): within `rate_range` (low meets, high misses), or found by doubling or halving
    `rate`. `settings` are serve's (requests, lengths, arrivals, replicas, scheduler, scenario fields…); each
    probed rate draws the same requests. Without `requests`, a probe's run is lengthened until its arrivals span
    STEADY_LIFETIMES request lifetimes (perfsim.serving.capacity), so a short burst cannot pass for a rate."""
    from perfsim.serving.capacity import max_rate as search
    from perfsim.serving.capacity import steady_requests

    if settings.get("trace") is not None:
        raise PerfsimError("--max-rate varies the arrival rate; a trace fixes it")
    slo_ttft_s, slo_tpot_s = duration(slo_ttft, "slo-ttft"), duration(slo_tpot, "slo-tpot")
    found: list[ServeResult] = []

    def run_at(at: float) -> ServingRun:
        found.append(serve(model_ref, hardware_ref, rate=at, slo_ttft=slo_ttft_s, slo_tpot=slo_tpot_s, **settings))
        # Without `requests`, a pilot of serve's default count measures a request's lifetime at this rate; when its
        # arrivals span too few lifetimes, the probe runs again at the steady length. The pilot cannot be extended
        # instead: it drains with no later arrivals, whereas the long run's first requests share the replica with
        # those that follow, so neither run's latencies are the other's (the waste is the pilot, 100 requests).
        if "requests" not in settings:
            lifetime_s = found[-1].summary["e2e_s"]["p50"] or 0.0
            requests = steady_requests(at, lifetime_s, found[-1].summary["requests"])
            if requests > found[-1].summary["requests"]:
                found[-1] = serve(model_ref, hardware_ref, rate=at, slo_ttft=slo_ttft_s, slo_tpot=slo_tpot_s,
                                  requests=requests, **settings)
        return found[-1].run

    return RateSearchResult(search(run_at, slo_ttft_s, slo_tpot_s, percentile, rate_range, rate),
                            found[0].notes if found else ())


def _serving_setup(model_ref, hardware_ref, scenario, rate, requests, prompt_len, output_len, seed, trace, max_batch,
                   max_tokens, chunked_prefill, block_size, engine, draft_model, draft_len, prefill_devices, arrivals,
                   replicas, router, scheduler, preemption, prefix_cache, host_kv, context_policy, fields):
    """serve's inputs checked and built: (base scenario, request iterator, total or None, scheduler config,
    speculation or None, deployment)."""
    from perfsim.serving.arrivals import from_trace, poisson
    from perfsim.serving.run import Deployment
    from perfsim.serving.scheduler import SchedulerConfig

    for name, value in (("max_batch", max_batch), ("max_tokens", max_tokens), ("block_size", block_size),
                        ("draft_len", draft_len), ("prefill_devices", prefill_devices)):
        bounded(name, value, 1, MAX_SETTING)
    bounded("replicas", replicas, 1, MAX_REPLICAS)
    bounded("prefix_cache", prefix_cache, 0, MAX_SETTING)
    spec = hardware(hardware_ref) if hardware_ref is not None else None
    if spec is not None and not isinstance(hardware_ref, str | Path) and hardware(spec.name) != spec:
        raise PerfsimError(f"serve takes hardware by name or path; {spec.name} was changed in memory "
                           "(write it to a YAML file and pass its path)")
    base = scenario_of(scenario if scenario is not None else {"model": model_ref} if model_ref else {},
                     hardware_ref, dict(fields))
    incoming: Iterator[Request]
    total: int | None = None
    if trace is None:
        bounded("requests", requests, 1, MAX_REQUESTS)
        incoming, total = poisson(rate, requests, str(prompt_len), str(output_len), seed, arrivals), requests
    elif isinstance(trace, str | Path):
        incoming = from_trace(Path(trace))
    else:
        incoming = iter(trace)
    if engine not in ("analytic", "des"):
        raise PerfsimError(f"engine: '{engine}' is not one of analytic, des")
    speculation = None
    if draft_model:
        from perfsim.serving.costs import Speculation

        speculation = Speculation(base.model_copy(update={"model": draft_model}), draft_len, base.acceptance)
    config = SchedulerConfig(max_batch, max_tokens, chunked_prefill, block_size, policy=scheduler,
                             preemption=preemption)
    host_bytes = 0.0
    if host_kv is not None:
        from perfsim.units import UnitError, parse_quantity

        if isinstance(host_kv, str) and _bare_number(host_kv):
            raise PerfsimError(f"--host-kv: '{host_kv}' has no unit; give a size with one, e.g. 256GiB")
        try:
            host_bytes = parse_quantity(host_kv, "capacity")
        except UnitError as err:
            raise PerfsimError(f"--host-kv: {err}") from None
    if preemption == "swap" and not host_bytes:
        raise PerfsimError("--preemption swap needs host memory for the swapped caches (--host-kv SIZE)")
    deployment = Deployment(replicas, router, prefix_cache, host_bytes, context_policy)
    return base, incoming, total, config, speculation, deployment


def _bare_number(text: str) -> bool:
    """Whether `text` is a number alone, without a unit."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SweepResult:
    """A sweep: one row per point (`to_frame()`), how many were computed now and kept from the results file."""

    frame: pd.DataFrame
    computed: int
    kept: int

    @property
    def summary(self) -> dict[str, int]:
        invalid = int(self.frame["reason"].notna().sum()) if "reason" in self.frame else 0
        return {"points": len(self.frame), "computed": self.computed, "kept": self.kept, "invalid": invalid}

    def to_frame(self) -> pd.DataFrame:
        """One row per point: its fields, results with units (step_s, tpot_s, tokens_per_s_per_device,
        cost_per_million_tokens_low_usd, ...) and `reason` (why a point has no result, else empty)."""
        return self.frame

    def plot(self, kind: str = "throughput", latency: str = "tpot_s") -> Figure:
        """Each hardware's Pareto front: tokens/s per chip (kind="throughput") or cost per million tokens
        (kind="cost") against the `latency` column."""
        from perfsim.planning.pareto import pareto_figure

        return pareto_figure(self.frame, kind, latency)  # type: ignore[arg-type]


def sweep(spec: str | Path | Mapping[str, Any] | SweepSpec, output: str | Path | None = None, *,
          workers: int | None = None, dask: str | None = None, progress: bool = False) -> SweepResult:
    """Run a sweep (a sweep YAML path, a mapping of its fields or a SweepSpec; perfsim.planning.sweep_spec).

    `output` (.parquet or .csv) keeps finished points: a rerun computes only the missing ones. `workers`:
    processes (default: the CPU count; 1: in this process); `dask`: a Dask scheduler address to run on
    instead. `progress` draws a bar on a terminal.
    """
    from perfsim.planning.runner import run
    from perfsim.planning.sweep_spec import SweepSpec, check_fields, expand, load_sweep
    from perfsim.progress import Progress, on_terminal
    from perfsim.specfile import validate

    if isinstance(spec, str | Path):
        spec = load_sweep(spec)
    elif not isinstance(spec, SweepSpec):
        if not isinstance(spec, Mapping):
            raise PerfsimError(f"sweep: expected a sweep YAML path, a mapping of its fields or a SweepSpec, got "
                               f"{type(spec).__name__}")
        spec = validate(SweepSpec, dict(spec), "sweep")
        check_fields(spec, "sweep")
    points = expand(spec)
    bar: Progress | None = None

    def on_chunk(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or Progress(total, "points")
        bar.update(done)

    ran = run(points, Path(output) if output is not None else None, workers, dask,
              on_chunk if progress and on_terminal() else None)
    return SweepResult(ran.frame, ran.computed, ran.kept)


@dataclass(frozen=True)
class PlanResult:
    """Per candidate chip, the cheapest configuration meeting the SLOs (perfsim.planning.search)."""

    demand: Demand
    choices: tuple[Choice, ...]

    @property
    def summary(self) -> dict[str, Any]:
        """{"candidates": [{hardware, chips, replicas, parallelism, weight_dtype, kv_dtype, max_batch, ttft_s, tpot_s,
        throughput_tokens_per_s, cost_per_hour, cost_per_million_tokens, joules_per_token, meets_slo}]}"""
        return {"candidates": [choice.summary for choice in self.choices]}

    @property
    def notes(self) -> list[str]:
        """Why a candidate has no configuration, and what its cost or energy lacks."""
        return [note for choice in self.choices for note in choice.notes]

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, parallelism and price ranges as columns."""
        from perfsim.planning.pricing import columns

        rows = []
        for choice in self.choices:
            row = flat_record({k: v for k, v in choice.summary.items()
                               if k not in ("cost_per_hour", "cost_per_million_tokens")})
            rows.append({**row, **columns(choice.cost_per_hour, choice.throughput_tokens_per_s)})
        return _frame(rows)

    def serve(self, hardware_name: str, **settings: Any) -> ServeResult:
        """The serving simulation of one replica of `hardware_name`'s chosen configuration at rate / replicas
        (its serving report; as many requests as the confirming run unless `settings` say otherwise); `settings`
        go to serve() (output=DIR, requests=...)."""
        choice = next((c for c in self.choices if c.hardware == hardware_name), None)
        if choice is None or choice.layout is None:
            raise PerfsimError(f"{hardware_name}: the plan has no configuration for it")
        d, layout = self.demand, choice.layout
        options = {"requests": choice.requests, "prompt_len": d.prompt_len, "output_len": d.output_len, "seed": d.seed,
                   "slo_ttft": d.slo_ttft_s, "slo_tpot": d.slo_tpot_s, "max_batch": layout.max_batch, **settings}
        return serve(d.model, layout.replica.ref, rate=d.rate / choice.replicas, **layout.fields, **options)


def plan(model_ref: str | Path, rate: float, slo_ttft: float | str, slo_tpot: float | str,
         candidates: Iterable[str | Path], *, percentile: float = 99.0, prompt_len: int = 512, output_len: int = 128,
         requests: int | None = None, seed: int = 0, max_chips: int = 64,
         weight_dtypes: Iterable[str] | None = None, kv_dtypes: Iterable[str] | None = None) -> PlanResult:
    """Per candidate chip, the cheapest configuration (chips, tp/pp/dp/ep, dtypes, replicas, batch limit) serving
    Poisson `rate` requests/s whose `percentile` TTFT and TPOT meet the SLOs: searched analytically, confirmed by the
    serving simulation (`requests` per run; None: 200 per bisection run and a confirming run long enough for a
    steady p99; perfsim.planning.search says how). `weight_dtypes` and `kv_dtypes` are the dtypes to consider
    (None: the model's weights, the activation dtype's KV cache)."""
    from perfsim.planning.search import Demand, dtype_choices, plan_candidate

    if not (math.isfinite(rate) and rate > 0):
        raise PerfsimError(f"--rate must be a positive number of requests per second, got {rate}")
    if not 0 < percentile <= 100:
        raise PerfsimError(f"--percentile must be in (0, 100], got {percentile}")
    for name, value, low, high in (("prompt_len", prompt_len, 1, MAX_SETTING),
                                   ("output_len", output_len, 1, MAX_SETTING), ("requests", requests, 1, MAX_REQUESTS),
                                   ("max_chips", max_chips, 1, 2**20), ("seed", seed, 0, 2**63 - 1)):
        bounded(name, value, low, high)
    chips = [hardware(ref) for ref in candidates]
    if not chips:
        raise PerfsimError("--candidates: give at least one chip")
    model(model_ref)
    demand = Demand(str(model_ref), rate, duration(slo_ttft, "slo-ttft"), duration(slo_tpot, "slo-tpot"),  # type: ignore[arg-type]
                    percentile, prompt_len, output_len, requests, seed, max_chips,
                    dtype_choices(weight_dtypes, "--weight-dtype"), dtype_choices(kv_dtypes, "--kv-dtype"))
    return PlanResult(demand, tuple(plan_candidate(spec.device, demand) for spec in chips))


@dataclass(frozen=True)
class RooflineResult:
    """A roofline Figure, the points on it and the notes on its devices."""

    figure: Figure
    points: list[dict[str, Any]]
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> list[dict[str, Any]]:
        return self.points

    def to_frame(self) -> pd.DataFrame:
        """One row per plotted op and device: intensity, attained rate, time, bound."""
        return _frame(self.points)

    def plot(self) -> Figure:
        return self.figure

    def save(self, path: str | Path) -> Path:
        """Write the figure to `path` (its suffix picks the format; none: .png added); return the path written.

        Raise PerfsimError for a directory, an unknown format or a path that cannot be written.
        """
        return save_figure(self.figure, path, "-o", "roofline.png")


def save_figure(figure: Figure, path: str | Path, option: str, example: str) -> Path:
    """Write `figure` to `path` (its suffix picks the format; none: .png added); return the path written.

    Raise PerfsimError naming `option` for a directory (suggesting DIR/`example`), an unknown format or a path that
    cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise PerfsimError(f"{option} {path}: is a directory; give a file name, e.g. {path / example}")
    path = path if path.suffix else path.with_name(f"{path.name}.png")
    try:
        figure.savefig(path)
    except OSError as err:
        raise PerfsimError(f"cannot write {path}: {err.strerror}") from None
    except ValueError as err:
        raise PerfsimError(f"cannot write {path}: {err}") from None
    return path


def roofline(hardware_ref: str | Path | Device | System, ops: Iterable[OpBase | str] = (),
             compare: Iterable[str | Path | Device | System] = (),
             step: StepResult | OpResult | Iterable[StepResult | OpResult] | None = None,
             cache: Cache = "cold", *, scenario: Scenario | Mapping[str, Any] | Path | None = None,
             cores: int | None = None) -> RooflineResult:
    """A roofline of `hardware_ref` (and the `compare` devices) with `ops` on each, every distinct op of
    `step` (one result or several: a StepResult's ops, an OpResult's op, each on its own chip, not costed
    again), and every distinct op of the model step `scenario` describes run on each device.
    `cores` limits the chips `ops` run on (CPUs and MCUs). Collectives have no arithmetic intensity and are
    refused."""
    from perfsim.analysis.roofline_plot import PlottedOp, distinct_labels, plot_roofline
    from perfsim.cost import cost
    from perfsim.ops import Collective

    specs = [hardware(ref) for ref in (hardware_ref, *compare)]
    chips = [_chip_spec(spec.device, cores) for spec in specs]
    parsed = [op(o) if isinstance(o, str) else o for o in ops]
    given = [] if step is None else [step] if isinstance(step, StepResult | OpResult) else list(step)
    costed = [r for r in given if isinstance(r, OpResult)]
    if any(isinstance(o, Collective) for o in [*parsed, *(r.op for r in costed)]):
        raise PerfsimError("a roofline shows ops on one chip; collectives have no arithmetic intensity to plot")
    steps = [r for r in given if isinstance(r, StepResult)]
    if scenario is not None:
        base = scenario_of(scenario, specs[0], {})
        steps += [estimate(base, spec, cache=cache, engine="analytic") for spec in specs]  # type: ignore[misc]
    points = []
    for one in steps:
        unique = {t.op.label: c for t, c in zip(one.estimate.trace.ops, one.estimate.costs, strict=True)
                  if not isinstance(t.op, Collective)}
        points += [PlottedOp(label, c, one.estimate.resolved.chip.name) for label, c in unique.items()]
    points += [PlottedOp(r.op.label, r.cost, r.hardware.device.name, ("result", i)) for i, r in enumerate(costed)]
    points += [PlottedOp(o.label, cost(o, chip, cache), chip.name, ("op", i)) for chip in chips
               for i, o in enumerate(parsed)]  # keyed by position: ops sharing a label stay apart
    points = distinct_labels(points)
    rows = [{"device": p.device, "op": p.label, "intensity_flop_per_byte": p.cost.intensity,
             "attained_flop_per_s": p.cost.flops / p.cost.time_s, "time_s": p.cost.time_s, "bound": p.cost.bound}
            for p in points]
    shown = dict.fromkeys(line for chip in chips for line in notes(chip))
    return RooflineResult(plot_roofline(chips, points), rows, tuple(shown))


@dataclass(frozen=True)
class VerifyResult:
    """The numpy reference checks of every op variant and number format: one row per check."""

    rows: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return all(row["passed"] for row in self.rows)

    @property
    def summary(self) -> dict[str, int]:
        failed = sum(not row["passed"] for row in self.rows)
        return {"passed": len(self.rows) - failed, "failed": failed}

    def to_frame(self) -> pd.DataFrame:
        """One row per check: check, op, variant, passed, max_abs_error, counts_match, detail, ..."""
        return _frame(self.rows)


def verify() -> VerifyResult:
    """Run the numpy reference checks: numerics of every op variant and number format, and the cost model's
    FLOP and byte counts against the kernels'."""
    from perfsim.reference.registry import run_checks

    return VerifyResult(run_checks())


def hardware_list() -> list[dict[str, Any]]:
    """One row per hardware spec on the search path (see perfsim.datadirs): name, kind, chips, the chip's main
    memory (capacity in bytes and datasheet bandwidth in bytes/s, summed over its copies where each core has its
    own: a wafer's per-PE SRAM), `origin` (`shipped`, or the directory it comes from), chip, vendor and
    description."""
    from perfsim.datadirs import origin, spec_files
    from perfsim.hardware import System

    rows = []
    for name, path in spec_files("hardware").items():
        spec = hardware(path)
        chip = spec.device
        copies = chip.copies(chip.main)
        rows.append({"name": name, "kind": chip.kind, "chips": spec.chips, "memory_bytes": chip.main.capacity * copies,
                     "memory_bandwidth_bytes_per_s": chip.main.bandwidth * copies, "origin": origin(path, "hardware"),
                     "chip": chip.name, "system": isinstance(spec, System), "vendor": chip.vendor,
                     "description": spec.description})
    return rows


def hardware_info(ref: str | Path | Device | System) -> dict[str, Any]:
    """Every field of a hardware spec (SI numbers), with `chips`, the chip's `peak_flop_per_s` per dtype and the
    `ranges` of fields given as a range."""
    from perfsim.hardware.describe import spans

    spec = hardware(ref)
    chip = spec.device
    return {**spec.model_dump(mode="json", exclude_none=True), "chips": spec.chips,
            "peak_flop_per_s": {dtype: chip.peak_flops(dtype) for dtype in chip.dtypes}, "ranges": spans(spec)}


def model_list() -> list[dict[str, Any]]:
    """One row per model spec on the search path: model_row()'s headline numbers and `origin`."""
    from perfsim.datadirs import origin, spec_files

    rows = []
    for path in spec_files("model").values():
        row = model_row(model(path))
        description = row.pop("description")
        rows.append({**row, "origin": origin(path, "model"), "description": description})
    return rows


def model_row(spec: str | Path | ModelSpec) -> dict[str, Any]:
    """Headline numbers: parameters (total, active) and FLOPs per token (2 per multiplied weight, no attention)."""
    from perfsim.models import active_params, total_params
    from perfsim.models.params import flops_per_token

    m = model(spec) if isinstance(spec, str | Path) else spec
    return {"name": m.name, "architecture": m.architecture, "mixture_of_experts": m.moe is not None,
            "layers": m.layers, "hidden": m.hidden, "params": total_params(m), "active_params": active_params(m),
            "flops_per_token": flops_per_token(m), "weight_dtype": m.weight_dtype, "description": m.description}


def model_info(spec: str | Path | ModelSpec) -> dict[str, Any]:
    """model_row() and the architecture: heads, kv_heads, head_dim, ffn, vocab, max_context, tied embeddings,
    norm, and the experts (experts, top_k, groups, expert_ffn, shared experts) of a mixture of experts.
    A per-layer field (OpenELM) is its list of values."""
    m = model(spec) if isinstance(spec, str | Path) else spec
    info = {**model_row(m), "heads": m.heads, "kv_heads": m.kv_heads if m.kv_heads is not None else m.heads,
            "head_dim": m.dim_per_head, "ffn": m.ffn, "ffn_kind": m.ffn_kind, "vocab": m.vocab,
            "max_context": m.max_context, "tied_embeddings": m.tied_embeddings, "norm": m.norm,
            "embedding_dtype": m.embedding_dtype}
    if m.moe is not None:
        info.update({f"moe_{name}": value for name, value in m.moe.model_dump(exclude_none=True).items()
                     if name != "source"})
    return {**info, "source": m.source}


def schema(what: str) -> dict[str, Any]:
    """The JSON schema of a spec format: hardware, op, model, scenario or case."""
    from pydantic import TypeAdapter

    from perfsim.hardware import Hardware
    from perfsim.models import ModelSpec
    from perfsim.models.scenario import Scenario
    from perfsim.ops import Op
    from perfsim.validation.case import CaseFile

    formats: dict[str, Any] = {"hardware": Hardware, "op": Op, "model": ModelSpec, "scenario": Scenario,
                               "case": CaseFile}
    if what not in formats:
        raise PerfsimError(f"schema: '{what}' is not one of {', '.join(formats)}")
    return TypeAdapter(formats[what]).json_schema()


@dataclass(frozen=True)
class ValidationResult:
    """Every published case predicted: `summary` (medians, worst case, counts) and one row per case."""

    report: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        return self.report["summary"]

    def to_frame(self) -> pd.DataFrame:
        """One row per case: id, hardware, metric, predicted, published, rel_error, result, bound, ..."""
        return _frame(self.report["cases"])

    def write(self, directory: str | Path) -> list[Path]:
        """Write DIR/report.json, report.csv, report.md and predicted_vs_published.png; return the paths.

        Raise PerfsimError if the directory cannot be written.
        """
        from perfsim.output import to_csv, to_json
        from perfsim.validation.report import markdown

        directory = Path(directory)
        paths = [directory / name for name in ("report.json", "report.csv", "report.md", "predicted_vs_published.png")]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            paths[0].write_text(to_json(self.report) + "\n")
            paths[1].write_text(to_csv(self.report["cases"]) + "\n")
            paths[2].write_text(markdown(self.report))
            self.plot().savefig(paths[3])
        except OSError as err:
            raise PerfsimError(f"cannot write to {directory}: {err.strerror}") from None
        return paths

    def plot(self) -> Figure:
        """Predicted/published per case on a log axis, calibration apart, unsupported listed."""
        from perfsim.analysis.validation_plot import plot_validation

        return plot_validation(self.report["cases"])


def validate(files: Iterable[str | Path] | None = None, hardware_class: str | None = None,
             progress: bool = False) -> ValidationResult:
    """Predict the published cases (default: every case file on the search path) and report each error;
    `hardware_class` (gpu, npu, cpu, wafer, pim, mcu or fpga) keeps only the cases of that class; `progress`
    draws a bar on a terminal."""
    from perfsim.progress import Progress, on_terminal
    from perfsim.validation.report import validation_report

    paths = [Path(f) for f in files] if files is not None else None
    bar: Progress | None = None

    def on_case(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or Progress(total, "cases")
        bar.update(done)

    return ValidationResult(validation_report(paths or None, hardware_class,
                                              on_case if progress and on_terminal() else None))


def train(model_ref: str | None = None, hardware_ref: str | Path | None = None, **fields: Any) -> TrainResult:
    """One training step: `ps.train("llama-3-70b", "h100-cluster", tp=8, pp=8, global_batch=1024, seq_len=4096)`.

    `fields` are perfsim.training.config.TrainConfig's (devices, tp, pp, dp, ep, zero, micro_batch, global_batch,
    seq_len, recompute, optimizer, precision, schedule, virtual_stages, grad_reduce, bucket_mb, tokens,
    check_memory). A model that names a network in workloads/networks/ (a CNN) is trained on one chip, one sample at
    a time.
    """
    from perfsim.models.network import shipped_networks
    from perfsim.specfile import validate as validated
    from perfsim.training.config import TrainConfig
    from perfsim.training.network import estimate_network_training
    from perfsim.training.result import TrainResult
    from perfsim.training.step import estimate_training

    data = {k: v for k, v in fields.items() if v is not None}
    data.update({k: str(v) for k, v in (("model", model_ref), ("hardware", hardware_ref)) if v is not None})
    for required in ("model", "hardware"):
        if required not in data:
            raise PerfsimError(f"train: {required}: missing required field")
    config = validated(TrainConfig, data, "train")
    if config.model in shipped_networks():
        return TrainResult(estimate_network_training(config))
    return TrainResult(estimate_training(config))

"""The validation case format: a published measurement, the workload behind it, and how it is used.

Roles: `validation` cases are predictions counted in the error summary; `calibration`
cases set a spec field (reported, never counted); `identity` cases follow from counting
alone. `rule` fixes any knob the source left unstated, before anyone runs the model.
A case the model cannot express yet names the mechanism it lacks in `unsupported`.

A case measures one `metric` of a `workload` on its `hardware` (a `Measure`): the workload is
one op, a sequence of ops costed in order, or a model scenario, which a `serve:` block runs
through the serving simulation. A `ratio` case divides two measures (`numerator`, `denominator`),
each on its own hardware; `speedup` is the ratio time(versus) / time(workload) on one hardware.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, WrapValidator, field_validator, model_validator

from perfsim.datadirs import shipped_dir, spec_files
from perfsim.errors import PerfsimError
from perfsim.hardware.common import Source, Spec
from perfsim.serving.arrivals import length_sampler
from perfsim.specfile import read_yaml, shown, validate

Metric = Literal[
    "latency_s", "ttft_s", "tpot_s", "e2e_s", "tokens_per_s", "tokens_per_s_per_device", "throughput_tokens_per_s",
    "max_rate_meeting_slo", "flops_per_s", "mac_per_cycle", "bus_bandwidth_bytes_per_s", "link_bandwidth_bytes_per_s",
    "memory_bandwidth_bytes_per_s", "intensity_flop_per_byte", "energy_j", "joules_per_token", "energy_per_frame_j",
    "average_power_w", "fits", "speedup", "ratio", "mfu", "train_tokens_per_s", "saturation_tokens"]
METRICS: tuple[str, ...] = typing.get_args(Metric)

FAMILIES = {
    "time": ("latency_s", "ttft_s", "tpot_s"),
    "throughput": ("tokens_per_s", "tokens_per_s_per_device", "flops_per_s", "mac_per_cycle"),
    "bandwidth": ("bus_bandwidth_bytes_per_s", "link_bandwidth_bytes_per_s", "memory_bandwidth_bytes_per_s"),
    "intensity": ("intensity_flop_per_byte",),
    "energy": ("energy_j", "joules_per_token", "energy_per_frame_j", "average_power_w"),
    "fit": ("fits",),
    "serving": ("e2e_s", "throughput_tokens_per_s", "max_rate_meeting_slo"),
    "ratio": ("speedup", "ratio"),
    "training": ("mfu", "train_tokens_per_s"),
    "offload": ("saturation_tokens",),
}
"""Metric families of the report; ttft_s and tpot_s of a case with a `serve:` block count as serving."""

OPS_METRICS = ("latency_s", "flops_per_s", "mac_per_cycle", "memory_bandwidth_bytes_per_s", "intensity_flop_per_byte",
               "energy_j", "energy_per_frame_j", "average_power_w", "fits")
"""What an op, or a sequence of ops, measures; one collective also measures bus and link bandwidth."""
COLLECTIVE_METRICS = ("bus_bandwidth_bytes_per_s", "link_bandwidth_bytes_per_s")
STEP_METRICS = ("latency_s", "ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_device", "energy_j",
                "joules_per_token", "energy_per_frame_j", "average_power_w", "fits", "saturation_tokens")
"""What one step of a scenario measures (latency_s is the step time; saturation_tokens, of an offloaded scenario,
the tokens at which the GPU keeps up with the streamed experts: MoE-Lens's Eq. 2, perfsim.offload)."""
SERVE_METRICS = ("ttft_s", "tpot_s", "e2e_s", "throughput_tokens_per_s", "max_rate_meeting_slo", "energy_j",
                 "joules_per_token", "average_power_w")
"""What a serving simulation (a scenario with a `serve:` block) measures."""

TRAIN_METRICS = ("mfu", "train_tokens_per_s")
"""What a training step (a `train` workload, perfsim.training) measures."""

MAX_SERVED = 100_000
"""Requests one serving case may simulate (a bisection runs several simulations)."""
Positive = Annotated[float, Field(gt=0)]


def family(metric: str, served: bool) -> str:
    """The report family of `metric` (served: measured by a serving simulation)."""
    if served and metric in ("ttft_s", "tpot_s"):
        return "serving"
    return next(name for name, metrics in FAMILIES.items() if metric in metrics)


class ServeBlock(Spec):
    """How a serving case runs `perfsim serve`: arrivals, lengths, scheduler, SLOs (seconds) and the percentile.

    `arrivals: poisson` draws `requests` arrivals at `rate` requests/s from `seed`; `burst` submits them all at
    t = 0 (an offline batch: throughput). `max_rate_meeting_slo` bisects the rate over `rate_search`.
    """

    arrivals: Literal["poisson", "burst"] = "poisson"
    rate: Positive | None = Field(None, description="requests per second (poisson arrivals)")
    rate_search: tuple[Positive, Positive] | None = Field(
        None, description="[low, high] requests/s bracketing the answer of max_rate_meeting_slo")
    requests: int = Field(100, ge=1, le=MAX_SERVED)
    prompt_len: int | str = Field(512, description="tokens, or uniform:LO:HI, exponential:MEAN, ... as serve takes")
    output_len: int | str = 128
    seed: int = Field(0, ge=0, le=2**63 - 1)
    percentile: float = Field(50, gt=0, le=100, description="the percentile of ttft_s, tpot_s and e2e_s compared")
    slo_ttft_s: Positive | None = None
    slo_tpot_s: Positive | None = None
    max_batch: int = Field(256, ge=1, le=2**31 - 1)
    max_tokens: int = Field(8192, ge=1, le=2**31 - 1)
    chunked_prefill: bool = True
    block_size: int = Field(16, ge=1, le=2**31 - 1)

    @field_validator("prompt_len", "output_len")
    @classmethod
    def _length(cls, value: int | str, info: Any) -> int | str:
        try:
            length_sampler(str(value), info.field_name)
        except PerfsimError as err:
            raise ValueError(str(err).partition(": ")[2] or str(err)) from None
        return value

    @model_validator(mode="after")
    def _rates(self) -> ServeBlock:
        if self.rate_search is not None and not self.rate_search[0] < self.rate_search[1]:
            raise ValueError(f"rate_search: low ({self.rate_search[0]:g}) must be below high ({self.rate_search[1]:g})")
        if self.arrivals == "burst" and (self.rate is not None or self.rate_search is not None):
            raise ValueError("burst arrivals all come at t = 0: give no rate or rate_search")
        return self


def _check_measure(metric: str, workload: Workload | None, serve: ServeBlock | None) -> None:
    """Raise ValueError if `metric` cannot be measured on `workload` (with `serve`)."""
    if workload is None:
        return
    if (workload.train is not None) != (metric in TRAIN_METRICS):
        raise ValueError(f"metrics {', '.join(TRAIN_METRICS)} and only they measure a train: workload")
    if workload.memory_level is not None and (metric != "fits" or workload.scenario is not None):
        raise ValueError("workload.memory_level applies to metric fits of an op or a sequence of ops")
    if serve is not None:
        if workload.scenario is None:
            raise ValueError("a serve: block needs a scenario workload (the model and its layout)")
        if metric not in SERVE_METRICS:
            raise ValueError(f"metric {metric} does not apply to a serving simulation (serve:)")
        if metric == "max_rate_meeting_slo":
            if serve.rate_search is None or serve.rate is not None:
                raise ValueError("max_rate_meeting_slo searches serve.rate_search: [low, high] (and takes no rate)")
            if serve.slo_ttft_s is None and serve.slo_tpot_s is None:
                raise ValueError("max_rate_meeting_slo needs serve.slo_ttft_s or serve.slo_tpot_s")
        elif serve.arrivals == "poisson" and (serve.rate is None or serve.rate_search is not None):
            raise ValueError(f"metric {metric} with poisson arrivals needs serve.rate (and no rate_search)")
    elif workload.train is not None:
        return
    elif workload.scenario is not None:
        if metric not in STEP_METRICS:
            served = " without a serve: block" if metric in SERVE_METRICS else ""
            raise ValueError(f"metric {metric} does not apply to a scenario{served}")
    elif metric not in OPS_METRICS + COLLECTIVE_METRICS:
        raise ValueError(f"metric {metric} does not apply to an op (it needs a scenario)")
    elif metric in COLLECTIVE_METRICS and workload.ops is not None:
        raise ValueError(f"metric {metric} applies to one collective op, not a sequence")


class Workload(Spec):
    """What ran: an op string (as `estimate --op` takes it), a sequence of op strings costed in order (`ops`),
    or a scenario (as `--scenario` takes it)."""

    op: str | None = None
    ops: list[str] | None = Field(None, min_length=1, description="ops run one after the other, e.g. a GEMV then "
                                  "the all-reduce of its output")
    scenario: dict[str, Any] | None = None
    train: dict[str, Any] | None = Field(None, description="a training step: perfsim.training.config.TrainConfig's "
                                         "fields but hardware (as `perfsim train` takes them)")
    cache: Literal["cold", "warm"] = "cold"
    memory_level: str | None = Field(None, description="for metric fits of ops: the memory level their working set "
                                     "must fit (default: the chip's main memory), e.g. an MCU's sram")

    @model_validator(mode="after")
    def _one(self) -> Workload:
        if sum(x is not None for x in (self.op, self.ops, self.scenario, self.train)) != 1:
            raise ValueError("give exactly one of 'op', 'ops', 'scenario' or 'train'")
        return self

    @property
    def op_texts(self) -> list[str]:
        """The op strings, in order (empty for a scenario)."""
        return [self.op] if self.op is not None else list(self.ops or [])


class Measure(Spec):
    """One side of a ratio: a `metric` of a `workload` on `hardware` (with `serve` for serving metrics)."""

    hardware: str
    workload: Workload
    metric: Metric
    serve: ServeBlock | None = None

    @model_validator(mode="after")
    def _measurable(self) -> Measure:
        if self.metric in ("ratio", "speedup", "fits"):
            raise ValueError(f"a ratio's side measures a number of one workload, not {self.metric}")
        _check_measure(self.metric, self.workload, self.serve)
        return self


def _published(value: Any, handler: Callable[[Any], float]) -> float | bool:
    return value if isinstance(value, bool) else handler(value)


Published = Annotated[float, Field(gt=0), WrapValidator(_published), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "boolean"}],
     "description": "the published value in SI units (positive and finite); for metric fits, true or false"})]


class Case(Spec):
    """One published number, and the measure that predicts it.

    `ratio`: predicted = numerator / denominator, each a Measure on its own hardware (cross-device speed-ups and
    energy-efficiency gains), with no `hardware` or `workload` of its own. `speedup`: `versus` is the baseline on
    the same hardware, predicted = time(versus) / time(workload). `fits`: `published` is true or false.
    """

    id: str = Field(pattern=r"^[A-Z0-9][A-Za-z0-9.-]*$")
    source: Source
    hardware: str | None = None
    workload: Workload | None = None
    versus: Workload | None = None
    serve: ServeBlock | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    metric: Metric
    published: Published
    status: Literal["verified", "unverified"]
    role: Literal["validation", "calibration", "identity"]
    rule: str = ""
    unsupported: str | None = Field(None, description="why the model cannot predict it yet, and the missing mechanism")

    @model_validator(mode="after")
    def _consistent(self) -> Case:
        if (self.metric == "speedup") != (self.versus is not None):
            raise ValueError("metric 'speedup' needs 'versus' (the baseline workload), and only it does")
        is_ratio = self.metric == "ratio"
        if is_ratio != (self.numerator is not None and self.denominator is not None) or (
                not is_ratio and (self.numerator or self.denominator)):
            raise ValueError("metric 'ratio' needs 'numerator' and 'denominator' (each a measure), and only it does")
        if is_ratio and (self.hardware or self.workload or self.serve):
            raise ValueError("a ratio case takes its hardware and workloads from numerator and denominator")
        if not is_ratio and (self.hardware is None or self.workload is None):
            raise ValueError(f"metric {self.metric} needs 'hardware' and 'workload'")
        if (self.metric == "fits") != isinstance(self.published, bool):
            raise ValueError("published: true or false for metric fits (whether it fits), a number otherwise")
        if self.metric == "speedup":
            for workload in (self.workload, self.versus):
                _check_measure("latency_s", workload, None)
            if self.serve is not None:
                raise ValueError("a speedup compares step or op times; it takes no serve: block")
        elif not is_ratio:
            _check_measure(self.metric, self.workload, self.serve)
        return self

    @property
    def served(self) -> bool:
        return self.serve is not None

    def measures(self) -> list[Measure]:
        """The measures the prediction divides (numerator first), or the one it is."""
        if self.numerator is not None and self.denominator is not None:
            return [self.numerator, self.denominator]
        assert self.hardware is not None and self.workload is not None
        if self.versus is not None:
            return [Measure.model_construct(hardware=self.hardware, workload=w, metric="latency_s", serve=None)
                    for w in (self.versus, self.workload)]
        return [Measure.model_construct(hardware=self.hardware, workload=self.workload, metric=self.metric,
                                        serve=self.serve)]

    @property
    def reported_hardware(self) -> str:
        """The hardware a report row names: the case's, or its numerator's."""
        return self.measures()[0].hardware


class CaseFile(Spec):
    cases: list[Case] = Field(min_length=1)


CASE_DIR = shipped_dir("case")


def load_cases(paths: list[Path] | None = None, check: Callable[[Case], None] | None = None) -> list[Case]:
    """Cases from `paths` (default: every shipped file), each passed to `check` (which raises PerfsimError on
    inputs the case cannot run with). Raise PerfsimError naming the file and the case id on any bad case."""
    files = paths or list(spec_files("case").values())
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for path in files:
        origin = str(shown(path))
        for case in _read_cases(path, origin):
            if case.id in seen:
                raise PerfsimError(f"{origin}: case {case.id}: the id is already used in {seen[case.id]}")
            seen[case.id] = origin
            try:
                if check is not None:
                    check(case)
            except PerfsimError as err:
                raise PerfsimError(f"{origin}: case {case.id}: {err}") from None
            cases.append(case)
    return cases


def _read_cases(path: Path, origin: str) -> list[Case]:
    """The cases of one file, each validated on its own so that an error names its case id."""
    data = read_yaml(path)
    items = data.get("cases")
    if set(data) != {"cases"} or not isinstance(items, list) or not items:
        return validate(CaseFile, data, origin).cases  # raises the precise error about the file's shape
    return [validate(Case, item, f"{origin}: case {_label(item, i)}") for i, item in enumerate(items)]


def _label(item: Any, index: int) -> str:
    """A case's id for messages, or its position when it has none."""
    case_id = item.get("id") if isinstance(item, dict) else None
    return case_id if isinstance(case_id, str) else f"#{index + 1}"


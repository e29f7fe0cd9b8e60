"""The validation case format: a published measurement, the workload behind it, and how it is used.

Roles: `validation` cases are predictions counted in the error summary; `calibration`
cases set a spec field (reported, never counted); `identity` cases follow from counting
alone. `rule` fixes any knob the source left unstated, before anyone runs the model.
A case the model cannot express yet names the mechanism it lacks in `unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from perfsim.datadirs import shipped_dir, spec_files
from perfsim.hardware.common import Source, Spec
from perfsim.specfile import read_yaml, shown, validate

METRICS = ("latency_s", "ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_device", "flops_per_s",
           "bus_bandwidth_bytes_per_s", "link_bandwidth_bytes_per_s", "memory_bandwidth_bytes_per_s",
           "intensity_flop_per_byte", "mac_per_cycle", "speedup", "fits")
Metric = Literal["latency_s", "ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_device", "flops_per_s",
                 "bus_bandwidth_bytes_per_s", "link_bandwidth_bytes_per_s", "memory_bandwidth_bytes_per_s",
                 "intensity_flop_per_byte", "mac_per_cycle", "speedup", "fits"]


class Workload(Spec):
    """What ran: an op string (as `estimate --op` takes it) or a scenario (as `--scenario` takes it)."""

    op: str | None = None
    scenario: dict[str, Any] | None = None
    cache: Literal["cold", "warm"] = "cold"

    @model_validator(mode="after")
    def _one(self) -> Workload:
        if (self.op is None) == (self.scenario is None):
            raise ValueError("give exactly one of 'op' or 'scenario'")
        return self


class Case(Spec):
    """One published number. For `speedup`, `versus` is the baseline: predicted = time(versus) / time(workload)."""

    id: str = Field(pattern=r"^[A-Z0-9][A-Za-z0-9.-]*$")
    source: Source
    hardware: str
    workload: Workload
    versus: Workload | None = None
    metric: Metric
    published: Annotated[float, Field(gt=0, description="the published value (positive and finite)")]
    status: Literal["verified", "unverified"]
    role: Literal["validation", "calibration", "identity"]
    rule: str = ""
    unsupported: str | None = Field(None, description="why the model cannot predict it yet, and the missing mechanism")

    @model_validator(mode="after")
    def _speedup_has_baseline(self) -> Case:
        if (self.metric == "speedup") != (self.versus is not None):
            raise ValueError("metric 'speedup' needs 'versus' (the baseline workload), and only it does")
        return self


class CaseFile(Spec):
    cases: list[Case] = Field(min_length=1)


CASE_DIR = shipped_dir("case")


def load_cases(paths: list[Path] | None = None, check: Callable[[Case], None] | None = None) -> list[Case]:
    """Cases from `paths` (default: every shipped file), each passed to `check` (which raises PerfsimError on
    inputs the case cannot run with). Raise PerfsimError naming the file and the case id on any bad case."""
    from perfsim.errors import PerfsimError

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

"""Building blocks shared by every device kind: compute units, memory levels, links, calibrations.

Every block that holds datasheet numbers carries a `source`; every calibrated
number is a `Calibrated` value naming the calibration case or microbenchmark it
came from. Datasheet peaks and measured derating never share a field.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from perfsim.dtypes import DTypeName
from perfsim.units import Bytes, BytesPerSecond, DollarsPerHour, FlopsPerSecond, Hertz, Seconds, Watts

MAX_COUNT = 2**53
"""The largest count a spec, scenario or flag may give: every integer up to it is exact as a float."""

Source = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3)]
Fraction = Annotated[float, Field(ge=1e-6, le=1, strict=True)]
Factor = Annotated[float, Field(ge=1e-6, le=1e9, strict=True)]
"""A plain positive multiplier (FLOP per cycle, instructions per lookup): far from 0 and from overflow."""
Count = Annotated[int, Field(gt=0, le=MAX_COUNT, strict=True)]
Natural = Annotated[int, Field(ge=0, le=MAX_COUNT, strict=True)]
"""A count that may be 0. Counts are strict: `true` is not 1, and 2.0 is not 2."""
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]

Q = TypeVar("Q")


class Spec(BaseModel):
    """Base of all spec models: frozen, a misspelled field is an error (never a default), and a float field
    takes no inf or nan."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False)


class Calibrated(Spec, Generic[Q]):
    """A measured derating or overhead, with the calibration case or microbenchmark it came from."""

    value: Q
    source: Source


class Clock(Spec):
    """Core clock: `peak` is the datasheet boost/max clock that datasheet peaks assume."""

    peak: Hertz
    base: Hertz | None = None
    source: Source


class ComputeUnit(Spec):
    """One kind of execution unit (tensor cores, vector ALUs, a MAC array).

    Give either `peak` (datasheet FLOP/s per dtype for the whole chip, at the peak
    clock) or `per_cycle` (FLOP per cycle per core; one FMA or MAC = 2 FLOP) with
    `cores`. Dtypes listed in `emulated` run in software (no hardware FPU for them).
    """

    name: Name
    role: Literal["matrix", "vector", "scalar"]
    peak: dict[DTypeName, FlopsPerSecond] | None = None
    per_cycle: dict[DTypeName, Factor] | None = None
    cores: Count | None = None
    emulated: list[DTypeName] = []
    source: Source

    @model_validator(mode="after")
    def _one_way(self) -> ComputeUnit:
        if (self.peak is None) == (self.per_cycle is None):
            raise ValueError("give exactly one of 'peak' (FLOP/s per dtype) or 'per_cycle' (FLOP/cycle/core)")
        if self.per_cycle is not None and self.cores is None:
            raise ValueError("'per_cycle' needs 'cores' (how many copies of this unit)")
        return self

    @property
    def dtypes(self) -> list[str]:
        return list(self.peak or self.per_cycle or {})

    def peak_flops(self, dtype: str, clock_hz: float) -> float | None:
        """FLOP/s for `dtype` at the datasheet peak clock `clock_hz`; None if unsupported."""
        if self.peak is not None:
            return self.peak.get(dtype)
        per_cycle = (self.per_cycle or {}).get(dtype)
        return None if per_cycle is None else per_cycle * (self.cores or 1) * clock_hz


class MemoryLevel(Spec):
    """One level of the memory hierarchy; `capacity` and `bandwidth` are per `scope` instance.

    `scope: core` means each core has its own (WSE-2's 48 KiB SRAM); `cache: true`
    marks a level that holds copies (L2, SLC, Infinity Cache) rather than data of its own.
    """

    name: Name
    capacity: Bytes
    bandwidth: BytesPerSecond
    latency: Seconds | None = None
    scope: Literal["chip", "cluster", "core"] = "chip"
    cache: StrictBool = False
    source: Source


Topology = Literal["ring", "switch", "full_mesh", "mesh2d", "rails"]


class LinkPort(Spec):
    """A chip's off-chip ports of one kind: `count` ports, each `bandwidth_per_direction`, wired as `topology`.

    full_mesh: one port to each peer (a pair shares one link; MI300X xGMI); switch: every port
    reaches a switch, so any pair can use all of them (NVLink via NVSwitch, PCIe, Ethernet).
    """

    name: Name
    topology: Topology
    count: Count = 1
    bandwidth_per_direction: BytesPerSecond
    latency: Seconds | None = None
    source: Source


class Power(Spec):
    tdp: Watts
    idle: Watts | None = None
    source: Source


class Price(Spec):
    per_device_hour: DollarsPerHour
    source: Source


class DeviceCalibration(Spec):
    """Measured deratings, each with its source; absent means the datasheet value is used."""

    sustained_clock: Calibrated[Hertz] | None = None
    compute_efficiency: Calibrated[Fraction] | None = None
    unit_efficiency: dict[Name, Calibrated[Fraction]] = Field(
        {}, description="per compute unit, in place of compute_efficiency for that unit (an SGEMM on the CUDA cores "
                        "says nothing of the tensor cores)")
    memory_efficiency: dict[Name, Calibrated[Fraction]] = {}
    core_bandwidth: dict[Name, Calibrated[BytesPerSecond]] = Field(
        {}, description="bytes/s one core can draw from a level (a CPU core cannot saturate DRAM alone; a GPU's "
                        "SM/CU bounds kernels that keep few busy, else it draws its 1/cores share)")
    op_overhead: Calibrated[Seconds] | None = None
    usable_memory_fraction: Calibrated[Fraction] | None = None


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once in `names`, in first-seen order."""
    return [name for name in dict.fromkeys(names) if names.count(name) > 1]


from perfsim.hardware.energy import EnergySpec, unknown_energy_levels  # noqa: E402  (energy.py builds on Spec, Name and Source above)


class DeviceBase(Spec):
    """Fields every device kind has. A device is one chip; all figures are per chip."""

    per_unit_calibration: ClassVar[bool] = True
    """Whether the kind's cost model prices each compute unit at its own calibration.unit_efficiency."""

    name: Name
    vendor: str
    description: str
    clock: Clock
    compute: list[ComputeUnit] = Field(min_length=1)
    memory: list[MemoryLevel] = Field(min_length=1, description="nearest (fastest) level first")
    main_memory: Name | None = Field(None, description="the level weights live in; default: the last")
    links: list[LinkPort] = []
    power: Power | None = None
    calibration: DeviceCalibration = DeviceCalibration()
    price: Price | None = None
    energy: EnergySpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DeviceBase:
        for field, listed in (("memory", self.memory), ("compute", self.compute), ("links", self.links)):
            if twice := _repeated([item.name for item in listed]):
                raise ValueError(f"{field}: names must be unique; {', '.join(twice)} given more than once")
        names = [level.name for level in self.memory]
        if self.main_memory is not None and self.main_memory not in names:
            raise ValueError(f"main_memory '{self.main_memory}' is not a memory level (levels: {', '.join(names)})")
        for field in ("memory_efficiency", "core_bandwidth"):
            unknown = set(getattr(self.calibration, field)) - set(names)
            if unknown:
                raise ValueError(f"calibration.{field} names unknown levels {sorted(unknown)}")
        units = {unit.name for unit in self.compute}
        if self.calibration.unit_efficiency and not self.per_unit_calibration:
            raise ValueError("calibration.unit_efficiency: this device kind's model runs the whole chip at one rate; "
                             "give calibration.compute_efficiency")
        if unknown := set(self.calibration.unit_efficiency) - units:
            raise ValueError(f"calibration.unit_efficiency names unknown compute units {sorted(unknown)} "
                             f"(units: {', '.join(sorted(units))})")
        if self.energy is not None and (problem := unknown_energy_levels(self.energy, names)):
            raise ValueError(problem)
        return self

    @property
    def chips(self) -> int:
        return 1

    @property
    def device(self) -> DeviceBase:
        """The chip itself: a System's `device` is the chip it is built of, so `hardware.device` is the chip of
        either."""
        return self

    @property
    def dtypes(self) -> list[str]:
        """Every dtype some compute unit runs, in first-seen order."""
        return list(dict.fromkeys(d for unit in self.compute for d in unit.dtypes))

    def peak_flops(self, dtype: str) -> float | None:
        """Datasheet FLOP/s for `dtype`: the fastest unit that runs it; None if none does."""
        peaks = [p for unit in self.compute if (p := unit.peak_flops(dtype, self.clock.peak)) is not None]
        return max(peaks) if peaks else None

    def copies(self, level: MemoryLevel) -> int:
        """How many copies of `level` the chip has: one per core (the kind's `cores`) for `scope: core`, else one."""
        return (getattr(self, "cores", None) or 1) if level.scope == "core" else 1

    def level(self, name: str) -> MemoryLevel:
        for level in self.memory:
            if level.name == name:
                return level
        raise KeyError(name)

    @property
    def main(self) -> MemoryLevel:
        return self.level(self.main_memory) if self.main_memory else self.memory[-1]

"""Sustained rates of an accelerator for kernel-level costing: calibrated where the spec says, else a stated default.

An accelerator spec is *calibrated* when it carries a compute calibration (`compute_efficiency` or
`sustained_clock`, or a `unit_efficiency` for every compute unit), a main-memory `memory_efficiency` and an
`op_overhead` (launch cost), each from a cited microbenchmark. Whatever it lacks gets the default derating
below, and its results say `calibrated: false`:

- DEFAULT_COMPUTE_EFFICIENCY = 0.7 of the datasheet peak: the sustained fraction large GEMMs reach in the
  shipped calibrations runs from 0.54 (MI300X: 0.9422 × 1207/2100 MHz clock, AMD-01) through 0.79 (Apple
  simdgroup_matrix FFMA, philipturner/metal-benchmarks) to 0.93 (Ascend 910B torch_npu matmul); 0.7 sits
  inside that range, below the middle, because an unknown chip's clock under load is unknown.
- DEFAULT_MEMORY_EFFICIENCY = 0.8 of every memory level's datasheet bandwidth: the shipped stream-triad
  calibrations span 0.77 (MI300X) to 0.89 (H100), A100 0.83, Ascend 910B 0.80.
- DEFAULT_LAUNCH_S = 5 µs per kernel: the order of an eager CUDA/HIP kernel launch as empty-kernel
  microbenchmarks report it (a few µs to ~11 µs, forums.developer.nvidia.com/t/221413); a per-platform
  launch microbenchmark replaces it (calibration.op_overhead).
- Per-unit bandwidth, where calibration.core_bandwidth does not give a level's: the unit's 1/cores share of the
  level's sustained bandwidth, the one per-unit rate the spec implies (all units together reach the level's
  bandwidth). It is a lower bound (a real SM/CU draws several times its share when few are busy), so kernels
  that keep few units busy come out slow, but a chip without a measurement keeps the meaning it had: a kernel
  streams at its fraction of units busy times the level's bandwidth.
These are defaults for what is unmeasured, not calibrations: no spec file carries them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from perfsim.cost.memo import PerObject
from perfsim.cost.roofline import (
    Cache,
    clock_uncalibrated,
    compute_rate,
    compute_unit,
    level_bandwidth,
    level_capacity,
    place,
)
from perfsim.hardware import ComputeUnit, Device, MemoryLevel
from perfsim.ops import Operand

DEFAULT_COMPUTE_EFFICIENCY = 0.7
DEFAULT_MEMORY_EFFICIENCY = 0.8
DEFAULT_LAUNCH_S = 5e-6
ELEMENT_OP_FLOPS = 2.0
"""Vector peaks count an FMA lane-op as 2 FLOP; one element operation (shift, convert, max, multiply) takes
one lane-op, so element operations per second = vector FLOP/s ÷ 2."""


def uncalibrated_fields(device: Device) -> list[str]:
    """The calibration fields `device` lacks (the default derating stands in for each); empty when calibrated.
    A CPU's model uses one: its sustained all-core clock (roofline.clock_uncalibrated)."""
    if device.kind == "cpu":
        return ["sustained_clock"] if any(clock_uncalibrated(device, u) for u in device.compute) else []
    calibration = device.calibration
    missing = []
    if calibration.compute_efficiency is None and calibration.sustained_clock is None:
        own = calibration.unit_efficiency
        missing += [f"unit_efficiency.{u.name}" for u in device.compute if u.name not in own] if own else \
            ["compute_efficiency"]
    if device.main.name not in calibration.memory_efficiency:
        missing.append(f"memory_efficiency.{device.main.name}")
    if calibration.op_overhead is None:
        missing.append("op_overhead")
    return missing


def is_calibrated(device: Device) -> bool:
    """True when the spec carries compute, main-memory and launch calibrations (no default derating used)."""
    return not uncalibrated_fields(device)


def unit_calibrated(device: Device, unit: ComputeUnit) -> bool:
    """Whether `unit`'s sustained rate is measured: its own unit_efficiency, or a chip-wide compute calibration."""
    calibration = device.calibration
    return (unit.name in calibration.unit_efficiency or calibration.compute_efficiency is not None
            or calibration.sustained_clock is not None)


def chip_rate(device: Device, engine: str, dtype: str) -> tuple[str, float]:
    """(dtype used, sustained FLOP/s of the whole chip): compute_rate, times the default derating if uncalibrated."""
    return rates(device).compute(engine, dtype)


def bandwidth(device: Device, level: MemoryLevel) -> float:
    """Sustained bytes/s of `level`: level_bandwidth, times the default derating where the level is uncalibrated."""
    rate = level_bandwidth(device, level)
    return rate if level.name in device.calibration.memory_efficiency else rate * DEFAULT_MEMORY_EFFICIENCY


def launch_s(device: Device) -> float:
    """Seconds one kernel launch costs: the calibrated op_overhead, else DEFAULT_LAUNCH_S."""
    overhead = device.calibration.op_overhead
    return overhead.value if overhead else DEFAULT_LAUNCH_S


def unit_bandwidth(device: Device, sustained: dict[str, float]) -> dict[str, float]:
    """Bytes/s one compute unit (SM, CU, AI Core) can draw from each level: calibration.core_bandwidth where the
    spec gives it, else its 1/cores share of the level's `sustained` bandwidth (module doc); a cache without its
    own figure gives a unit at least what main memory does, as every main-memory byte reaches the unit through it."""
    measured = device.calibration.core_bandwidth
    share = {name: measured[name].value if name in measured else rate / cores(device)
             for name, rate in sustained.items()}
    floor = {level.name: share[device.main.name] for level in device.memory
             if level.cache and level.name not in measured}
    return {name: max(rate, floor.get(name, 0.0)) for name, rate in share.items()}


def cores(device: Device) -> int:
    """Compute units tiles are spread over (SMs, CUs, AI Cores); 1 when the spec does not say."""
    return getattr(device, "cores", None) or 1


@dataclass
class ChipRates:
    """One chip's sustained rates as the kernel models use them, worked out once per device (memoised).
    Holds its device weakly (`ref`), so that the memo entry, which this is, dies with the device."""

    ref: weakref.ReferenceType[Device]
    cores: int
    launch_s: float
    bandwidth: dict[str, float]
    unit_bandwidth: dict[str, float]
    caches: list[tuple[float, str]]
    main: str
    _compute: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _matrix: dict[str, bool] = field(default_factory=dict)
    _element_ops: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, device: Device) -> ChipRates:
        caches = [(level_capacity(device, level), level.name) for level in device.memory if level.cache]
        sustained = {level.name: bandwidth(device, level) for level in device.memory}
        return cls(weakref.ref(device), cores(device), launch_s(device), sustained, unit_bandwidth(device, sustained),
                   caches, device.main.name)

    @property
    def device(self) -> Device:
        device = self.ref()
        if device is None:
            raise ReferenceError("ChipRates outlived its device: hold the device while using its rates")
        return device

    def compute(self, engine: str, dtype: str) -> tuple[str, float]:
        key = (engine, dtype)
        if key not in self._compute:
            used, unit, rate = compute_unit(self.device, engine, dtype)
            derating = 1.0 if unit_calibrated(self.device, unit) else DEFAULT_COMPUTE_EFFICIENCY
            self._compute[key] = used, rate * derating
        return self._compute[key]

    def element_ops(self, dtype: str) -> float:
        """Element operations per second on the vector units, in `dtype` or the nearest wider dtype they run
        (compute_rate widens within the vector role before it borrows the matrix units)."""
        if dtype not in self._element_ops:
            self._element_ops[dtype] = self.compute("vector", dtype)[1] / ELEMENT_OP_FLOPS
        return self._element_ops[dtype]

    def has_matrix_unit(self, dtype: str) -> bool:
        """True when a matrix-role unit runs `dtype` (else matrix work falls back to the vector units)."""
        if dtype not in self._matrix:
            clock = self.device.clock.peak
            self._matrix[dtype] = any(u.role == "matrix" and u.peak_flops(dtype, clock) for u in self.device.compute)
        return self._matrix[dtype]

    def exp_rate(self) -> float:
        """exp results per second: the special-function units where the spec gives them, else one fp32 element
        operation each. Special-function units are derated like the vector units (sustained / datasheet)."""
        ops = self.element_ops("fp32")
        special = getattr(self.device, "special_functions", None)
        if special is None:
            return ops
        used = compute_rate(self.device, "vector", "fp32")[0]
        derate = ops * ELEMENT_OP_FLOPS / (self.device.peak_flops(used) or 1.0)
        return special.per_cycle_per_core * self.cores * self.device.clock.peak * derate

    def holding(self, nbytes: float) -> str:
        """The nearest cache that holds `nbytes` whole (where re-reads of a resident operand hit), else main memory."""
        for capacity, name in self.caches:
            if nbytes <= capacity:
                return name
        return self.main

    def memory_seconds(self, traffic: dict[str, float], occupancy: float = 1.0) -> dict[str, float]:
        """`memory:<level>` seconds of a kernel keeping a fraction `occupancy` of the units busy: the
        occupancy × cores busy units stream min(level's sustained bandwidth, busy units × unit_bandwidth)."""
        active = occupancy * self.cores
        return {f"memory:{name}": moved / min(self.bandwidth[name], active * self.unit_bandwidth[name])
                for name, moved in traffic.items()}


_RATES: PerObject[Device, ChipRates] = PerObject(ChipRates.of)


def rates(device: Device) -> ChipRates:
    """The memoised ChipRates of `device` (keyed by identity; specs are frozen; freed with the device)."""
    return _RATES(device)


def add(traffic: dict[str, float], level: str, nbytes: float) -> None:
    if nbytes > 0:
        traffic[level] = traffic.get(level, 0.0) + nbytes


def compulsory(operands: list[Operand], device: Device, cache: Cache) -> dict[str, float]:
    """Bytes per level when every operand is read (and written) once, placed as the roofline places it."""
    traffic: dict[str, float] = {}
    for operand in operands:
        add(traffic, place(operand, device, cache).name, operand.traffic)
    return traffic

"""The roofline cost of an op on one chip of any kind: compute, memory levels, table lookups.

compute_s = FLOPs / (datasheet peak × sustained_clock / peak_clock × compute_efficiency)
(a CPU whose spec gives neither runs at DEFAULT_CPU_CLOCK_RATIO × its peak clock: see unit_scale)
memory_s[level] = bytes served by that level / (bandwidth × instances × memory_efficiency)
Resources overlap; the op takes as long as the slowest, plus the calibrated op overhead.
"""

from __future__ import annotations

from typing import Literal

from perfsim.cost.opcost import OpCost
from perfsim.dtypes import resolve_dtype
from perfsim.errors import PerfsimError
from perfsim.hardware import ComputeUnit, Device, MemoryLevel
from perfsim.ops import MoE, OpBase, Operand

Cache = Literal["cold", "warm"]

FLOAT_PROMOTIONS = {"fp4_e2m1": "fp8_e4m3", "fp8_e4m3": "fp16", "fp8_e5m2": "fp16", "fp16": "bf16", "bf16": "fp32",
                    "tf32": "fp32", "fp32": "fp64"}
INT_WIDTHS = (1, 2, 4, 8, 16, 32)
EXACT_FLOAT = {1: "fp16", 2: "fp16", 4: "fp16", 8: "fp16", 16: "fp32", 32: "fp64"}
"""The narrowest float whose significand holds every integer of that many bits (fp16: 11 bits, fp32: 24, fp64: 53)."""


def promotions(dtype: str) -> list[str]:
    """`dtype`, then the wider dtypes a chip without a unit for it computes it in, in order of preference.

    Integers widen int4 → int8 → int16 → int32 first, then go to the narrowest float that holds them
    exactly and up the float chain; floats widen (fp8 → fp16 → bf16 → fp32 → fp64); posits compute in fp32.
    """
    found = resolve_dtype(dtype)
    if found.family == "int":
        ints = [f"int{bits}" for bits in INT_WIDTHS if bits >= found.storage_bits]
        chain, current = [found.name, *(i for i in ints if i != found.name)], EXACT_FLOAT[found.storage_bits]
    elif found.family == "posit":
        chain, current = [found.name], "fp32"
    else:
        chain, current = [], found.name
    while current is not None:
        chain.append(current)
        current = FLOAT_PROMOTIONS.get(current)
    return chain


def compute_rate(device: Device, engine: str, dtype: str) -> tuple[str, float]:
    """(dtype actually used, sustained FLOP/s) for work of `engine` kind (matrix or vector) in `dtype`."""
    used, _, rate = compute_unit(device, engine, dtype)
    return used, rate


def compute_unit(device: Device, engine: str, dtype: str) -> tuple[str, ComputeUnit, float]:
    """(dtype actually used, the unit that runs it, its sustained FLOP/s) for `engine` work in `dtype`.

    Walks the promotions of `dtype` on the units of the requested role first (bf16 softmax on a chip whose
    vector units only run fp32 runs in fp32 there, not on the matrix cores); only if no unit of that role
    runs any of them does it borrow another role's units; of the units that run it, the fastest sustained.
    Raise PerfsimError if nothing on the chip runs it.
    """
    chain = promotions(dtype)
    for units in ([u for u in device.compute if u.role == engine], device.compute):
        for current in chain:
            rates = [(p * unit_scale(device, u), u) for u in units
                     if (p := u.peak_flops(current, device.clock.peak)) is not None]
            if rates:
                rate, unit = max(rates, key=lambda pair: pair[0])
                return current, unit, rate
    raise PerfsimError(f"{device.name} has no compute unit for {dtype} (tried {', '.join(chain)})")


DEFAULT_CPU_CLOCK_RATIO = 0.75
"""All-core clock under sustained vector load over the datasheet peak (single-core turbo) clock, for a CPU whose spec
gives no calibration.sustained_clock, compute_efficiency or unit_efficiency. Cited ratios span 1.0 (Raspberry Pi 5:
cpufp fp32 FMA on 4 cores, 153.5 GFLOP/s = 2.398 of 2.4 GHz), 0.86 (Apple M2 Max: cpufp fp32 FMA on 8 P-cores,
765.33 GFLOP/s = 2.99 of 3.49 GHz) down to 0.6 (a 28-core Cascade Lake-SP: 3.3 GHz all-core non-AVX turbo of
4.0 GHz, less the up to 900 MHz AVX-512 licence drop that Intel's specification update tables give,
computerbase.de/2019-04/intel-cascade-lake-sp-lcc-hcc-xcc-avx-512-takt). 0.75 sits inside that range, below its
middle, as the accelerators' default compute derating does: an unknown chip's clock under load is unknown. A
default, not a measurement: no spec file carries it."""


def clock_uncalibrated(device: Device, unit: ComputeUnit) -> bool:
    """True for a CPU's `unit` whose sustained rate no calibration gives (no sustained_clock, compute_efficiency or
    its own unit_efficiency): DEFAULT_CPU_CLOCK_RATIO stands in (unit_scale)."""
    calibration = device.calibration
    return (device.kind == "cpu" and calibration.sustained_clock is None and calibration.compute_efficiency is None
            and unit.name not in calibration.unit_efficiency)


def clock_ratio(device: Device) -> float:
    """The calibrated sustained clock over the datasheet peak clock (1 when uncalibrated)."""
    sustained = device.calibration.sustained_clock
    return sustained.value / device.clock.peak if sustained else 1.0


def clock_scale(device: Device) -> float:
    """Sustained over datasheet compute: compute_efficiency × sustained_clock / peak clock (1 when uncalibrated)."""
    efficiency = device.calibration.compute_efficiency
    return (efficiency.value if efficiency else 1.0) * clock_ratio(device)


def unit_scale(device: Device, unit: ComputeUnit) -> float:
    """clock_scale for `unit`, its calibration.unit_efficiency standing in for compute_efficiency where given; on a
    CPU with none of them, DEFAULT_CPU_CLOCK_RATIO (the all-core clock under vector load is below the peak)."""
    if clock_uncalibrated(device, unit):
        return DEFAULT_CPU_CLOCK_RATIO
    own = device.calibration.unit_efficiency.get(unit.name)
    return clock_scale(device) if own is None else own.value * clock_ratio(device)


def level_bandwidth(device: Device, level: MemoryLevel) -> float:
    """Sustained bytes/s of a level across all its instances on the chip, capped by what its cores can draw."""
    instances = device.copies(level)
    efficiency = device.calibration.memory_efficiency.get(level.name)
    bandwidth = level.bandwidth * instances * (efficiency.value if efficiency else 1.0)
    per_core = device.calibration.core_bandwidth.get(level.name)
    cores = getattr(device, "cores", None)
    return min(bandwidth, per_core.value * cores) if per_core and cores else bandwidth


def level_capacity(device: Device, level: MemoryLevel) -> float:
    return level.capacity * device.copies(level)


def place(operand: Operand, device: Device, cache: Cache) -> MemoryLevel:
    """The level that serves `operand`: main memory when cold; the nearest cache it fits when warm."""
    if cache == "warm":
        for level in device.memory:
            if level.cache and operand.bytes <= level_capacity(device, level):
                return level
    return device.main


def roofline(op: OpBase, device: Device, cache: Cache = "cold") -> OpCost:
    """The roofline OpCost of `op` on one chip of `device`."""
    resource: dict[str, float] = {}
    for engine, flops in op.work():
        if isinstance(op, MoE) and engine == "matrix":
            flops += op.routed_flops * (op.imbalance - 1)  # the busiest rank sets the pace
        dtype, rate = compute_rate(device, engine, op.compute_dtype)
        key = f"compute:{dtype}"
        resource[key] = resource.get(key, 0.0) + flops / rate

    traffic: dict[str, float] = {}
    for operand in op.operands():
        level = place(operand, device, cache)
        traffic[level.name] = traffic.get(level.name, 0.0) + operand.traffic
    for name, moved in traffic.items():
        resource[f"memory:{name}"] = moved / level_bandwidth(device, device.level(name))

    overhead = device.calibration.op_overhead.value if device.calibration.op_overhead else 0.0
    return OpCost(op.label, op.flops, op.bytes, resource, traffic, overhead)


"""The roofline cost of an op on one chip of any kind: compute, memory levels, table lookups.

compute_s = FLOPs / (datasheet peak × sustained_clock / peak_clock × compute_efficiency)
memory_s[level] = bytes served by that level / (bandwidth × instances × memory_efficiency)
Resources overlap; the op takes as long as the slowest, plus the calibrated op overhead.
"""

from __future__ import annotations

from typing import Literal

from perfsim.cost.opcost import OpCost
from perfsim.dtypes import resolve_dtype
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, MemoryLevel
from perfsim.ops import LutGemm, MoE, OpBase, Operand

Cache = Literal["cold", "warm"]

PROMOTIONS = {
    "int1": "int2", "int2": "int4", "ternary": "int4", "int4": "int8", "int8": "fp16", "int16": "fp32",
    "fp4_e2m1": "fp8_e4m3", "fp8_e4m3": "fp16", "fp8_e5m2": "fp16", "fp16": "bf16", "bf16": "fp32",
    "tf32": "fp32", "fp32": "fp64",
}
"""Where a device has no unit for a dtype, it computes in the next wider one (int4 on an H100 → int8)."""


def compute_rate(device: Device, engine: str, dtype: str) -> tuple[str, float]:
    """(dtype actually used, sustained FLOP/s) for work of `engine` kind in `dtype`.

    Prefers units of the given role (matrix or vector); falls back to any unit, then to
    wider dtypes. Raise PerfsimError if nothing on the chip runs it.
    """
    scale = _clock_scale(device)
    tried = []
    current: str | None = resolve_dtype(dtype).name
    while current is not None:
        tried.append(current)
        for units in ([u for u in device.compute if u.role == engine], device.compute):
            peaks = [p for u in units if (p := u.peak_flops(current, device.clock.peak)) is not None]
            if peaks:
                return current, max(peaks) * scale
        current = PROMOTIONS.get(current) if not current.startswith("posit") else "fp32"
    raise PerfsimError(f"{device.name} has no compute unit for {dtype} (tried {', '.join(tried)})")


def _clock_scale(device: Device) -> float:
    calibration = device.calibration
    scale = calibration.compute_efficiency.value if calibration.compute_efficiency else 1.0
    if calibration.sustained_clock:
        scale *= calibration.sustained_clock.value / device.clock.peak
    return scale


def _instances(device: Device, level: MemoryLevel) -> int:
    """How many copies of `level` the chip has: one per core for `scope: core`, else one."""
    return (getattr(device, "cores", None) or 1) if level.scope == "core" else 1


def level_bandwidth(device: Device, level: MemoryLevel) -> float:
    """Sustained bytes/s of a level across all its instances on the chip, capped by what its cores can draw."""
    instances = _instances(device, level)
    efficiency = device.calibration.memory_efficiency.get(level.name)
    bandwidth = level.bandwidth * instances * (efficiency.value if efficiency else 1.0)
    per_core = device.calibration.core_bandwidth.get(level.name)
    cores = getattr(device, "cores", None)
    return min(bandwidth, per_core.value * cores) if per_core and cores else bandwidth


def level_capacity(device: Device, level: MemoryLevel) -> float:
    return level.capacity * _instances(device, level)


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
    if isinstance(op, LutGemm) and getattr(device, "lut", None) is not None:
        resource = _table_lookup(op, device)

    traffic: dict[str, float] = {}
    for operand in op.operands():
        level = place(operand, device, cache)
        traffic[level.name] = traffic.get(level.name, 0.0) + operand.traffic
    for name, moved in traffic.items():
        resource[f"memory:{name}"] = moved / level_bandwidth(device, device.level(name))

    overhead = device.calibration.op_overhead.value if device.calibration.op_overhead else 0.0
    return OpCost(op.label, op.flops, op.bytes, resource, traffic, overhead)


def _table_lookup(op: LutGemm, device) -> dict[str, float]:
    """T-MAC on a CPU: lookup instructions (each returns `lookups_per_instruction` entries) times the
    kernel's SIMD instructions per lookup instruction, at the SIMD issue rate; table builds on the vector units."""
    lut = device.lut
    issue_per_s = lut.simd_issue_per_cycle_per_core * device.cores * device.clock.peak * _clock_scale(device)
    instructions = op.lookups / lut.lookups_per_instruction * op.simd_ops_per_table_lookup
    dtype, rate = compute_rate(device, "vector", op.dtype)
    return {"lut": instructions / issue_per_s, f"compute:{dtype}": op.table_build_adds / rate}

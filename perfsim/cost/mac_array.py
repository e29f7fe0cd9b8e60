"""The MAC-array cost model: folds, fill and drain, utilisation and per-operand traffic of a GEMM on a
described array (perfsim.hardware.mac_array), as SCALE-Sim counts them for the systolic dataflows.

A GEMM C[M×N] = A[M×K] · B[K×N] (A = ifmap, B = filter, C = ofmap; a conv2d is its im2col GEMM: M = output
pixels, K = in_channels/groups × kernel², N = out_channels/groups, once per group and batch sample) maps onto
an R × C array (R rows, C cols). A PE with L lanes in the op's format takes L K-elements per cycle, so K
becomes K' = ⌈K/L⌉; a bit-serial PE takes P = ⌈bits / serial_bits⌉ cycles per MAC, which stretches the
streamed dimension P-fold. Cycles (folds run back to back; SCALE-Sim pads a partly filled fold to the full
array, so a fold costs the same however little of the array it fills):
  output_stationary  ⌈M/R⌉·⌈N/C⌉ folds × (R + C + P·K' − 2) − 1     (C tile held; K streams; skew in, drain out)
  weight_stationary  ⌈K'/R⌉·⌈N/C⌉ folds × (2R + C + P·M − 2) − 1    (B tile loaded (R), M rows stream through)
  input_stationary   ⌈K'/R⌉·⌈M/C⌉ folds × (2R + C + P·N − 2) − 1    (A tile loaded, N columns stream through)
  cube               ⌈M/R⌉·⌈N/C⌉·⌈K'/depth⌉ · P + ⌈log2 depth⌉ + 1   (one R×depth·depth×C product per cycle,
                                                                     pipeline filled once: multiply + adder tree)
  adder_tree         M·⌈N/R⌉·⌈K'/C⌉ · P + ⌈log2 C⌉ + 1             (R trees of C products, weights held per tile)
  matrix_2d          ⌈M/R⌉·⌈N/C⌉ · P·K' + 1                         (broadcast operands, output tile held)
Utilisation = M·N·K' / (cycles × PEs) (MACs done over MACs the array could do, lanes counted).

Traffic (elements; bytes at each operand's format): each operand is read from its buffer as often as the
dataflow re-streams it (output_stationary/cube/matrix_2d: A once per column fold, B once per row fold;
weight_stationary/adder_tree: B once, A once per column fold, C's partial sums written once per K fold and
read back for all but the first; input_stationary: the mirror image). Main memory sees each operand once
when its reuse footprint (the part the loop order reuses: all of A across column folds, a K×C slice of B
across row folds, an M×C column of partial sums across K folds) fits in half its buffer (double-buffered),
else the buffer's traffic again; an operand without a buffer streams from main memory at the buffer's count.
Buffers and main memory run concurrently with the array (double-buffered): the op takes the slowest.
Ops without a matrix product (elementwise, norms, softmax, attention) fall back to the roofline.
Energy (perfsim.cost.energy): cycles × PEs × `pe_energy` plus bytes × the spec's `energy.per_byte` levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, clock_scale, level_bandwidth, promotions, roofline
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware.mac_array import Array, MacArray
from perfsim.ops import Conv2d, Gemm, OpBase
from perfsim.ops_network import NetworkStep


@dataclass(frozen=True)
class Mapping:
    """One M×K×N GEMM on the array: `folds` of `fold_cycles` each, `cycles` in all, and the element traffic of
    each operand at its buffer and its reuse footprint (elements that must stay on chip to read it once)."""

    folds: int
    fold_cycles: int
    cycles: int
    utilization: float
    buffer_elements: dict[str, float]
    footprint: dict[str, float]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def mapping(m: int, k: int, n: int, array: Array, dtype: str) -> Mapping:
    """How an M×K×N GEMM in `dtype` runs on `array` (module doc). Raise PerfsimError for a format it lacks."""
    if dtype not in array.formats:
        raise PerfsimError(f"the {array.dataflow} array computes {', '.join(array.formats)}, not {dtype}")
    r, c, p = array.rows, array.cols, array.passes(dtype)
    kk = _ceil(k, array.formats[dtype])
    a, b, out = m * k, k * n, m * n
    flow = array.dataflow
    if flow == "output_stationary":
        folds, per = _ceil(m, r) * _ceil(n, c), r + c + p * kk - 2
        cycles = folds * per - 1
        reads = {"ifmap": a * _ceil(n, c), "filter": b * _ceil(m, r), "ofmap": out}
        footprint = {"ifmap": a, "filter": k * c, "ofmap": 0}
    elif flow in ("weight_stationary", "adder_tree"):
        k_folds = _ceil(kk, r if flow == "weight_stationary" else c)
        if flow == "weight_stationary":
            folds, per = k_folds * _ceil(n, c), 2 * r + c + p * m - 2
            cycles = folds * per - 1
            col_folds = _ceil(n, c)
        else:
            folds, per = k_folds * _ceil(n, r), p * m
            cycles = folds * per + math.ceil(math.log2(c)) + 1
            col_folds = _ceil(n, r)
        reads = {"ifmap": a * col_folds, "filter": b, "ofmap": out * (2 * k_folds - 1)}
        footprint = {"ifmap": a, "filter": 0, "ofmap": m * min(n, c if flow == "weight_stationary" else r)}
    elif flow == "input_stationary":
        k_folds = _ceil(kk, r)
        folds, per = k_folds * _ceil(m, c), 2 * r + c + p * n - 2
        cycles = folds * per - 1
        reads = {"ifmap": a, "filter": b * _ceil(m, c), "ofmap": out * (2 * k_folds - 1)}
        footprint = {"ifmap": 0, "filter": b, "ofmap": n * min(m, c)}
    else:  # cube, matrix_2d: output tiles held, operands broadcast
        folds = _ceil(m, r) * _ceil(n, c)
        if flow == "cube":
            per = _ceil(kk, array.depth) * p
            cycles = folds * per + math.ceil(math.log2(array.depth)) + 1
        else:
            per = p * kk
            cycles = folds * per + 1
        reads = {"ifmap": a * _ceil(n, c), "filter": b * _ceil(m, r), "ofmap": out}
        footprint = {"ifmap": a, "filter": k * c, "ofmap": 0}
    utilization = m * n * kk / (cycles * array.pes)
    return Mapping(folds, per, cycles, utilization, reads, footprint)


def array_format(array: Array, dtype: str) -> str:
    """The format the array computes `dtype` in: itself, else the first wider one it has (perfsim.cost.roofline's
    promotions: int4 on an int16 array runs as int16). Raise PerfsimError if it has none."""
    for candidate in promotions(dtype):
        if candidate in array.formats:
            return candidate
    raise PerfsimError(f"the {array.dataflow} array computes {', '.join(array.formats)}, not {dtype}")


@dataclass(frozen=True)
class Gemms:
    """An op as `count` identical M×K×N GEMMs with its operands' formats (A, B, C)."""

    m: int
    k: int
    n: int
    count: int
    formats: tuple[str, str, str]


def as_gemms(op: OpBase) -> Gemms | None:
    """A Gemm (a weight-shared batch as one GEMM of batch · M rows) or a conv2d (im2col, per group and sample) as
    identical GEMMs; None for any other op."""
    if isinstance(op, Gemm):
        formats = (op.dtype, op.weight_dtype or op.dtype, op.out_dtype or op.dtype)
        if op.weight_shared:  # one weight matrix for the whole batch: its rows stack into one GEMM
            return Gemms(op.batch * op.m, op.k, op.n, 1, formats)
        return Gemms(op.m, op.k, op.n, op.batch, formats)
    if isinstance(op, Conv2d):
        k = op.in_channels // op.groups * op.kernel**2
        return Gemms(op.out_height * op.out_width, k, op.out_channels // op.groups, op.batch * op.groups,
                     (op.dtype, op.dtype, op.dtype))
    return None


def _bytes(elements: float, fmt: str) -> float:
    return elements * resolve_format(fmt).bits_per_element / 8


def mac_array_cost(op: OpBase, device: MacArray, cache: Cache = "cold") -> OpCost:
    """What `op` costs on the MAC-array engine `device` (module doc). Raise PerfsimError for another kind or a
    format the array does not compute."""
    if device.kind != "mac_array":
        raise PerfsimError(f"mac_array_cost prices MAC-array engines; {device.name} is a {device.kind}")
    if isinstance(op, NetworkStep):
        return _sum(op, [mac_array_cost(layer, device, cache) for layer in op.layers()])
    gemms = as_gemms(op)
    hz = device.clock.peak * clock_scale(device)
    if gemms is None:
        c = roofline(op, device, cache)
        return replace(c, detail={"dataflow": "roofline (no matrix product)", "cycles": f"{c.compute_s * hz:.0f}"})
    dtype = array_format(device.array, op.compute_dtype)
    mapped = mapping(gemms.m, gemms.k, gemms.n, device.array, dtype)
    traffic: dict[str, float] = {}
    for operand, fmt in zip(("ifmap", "filter", "ofmap"), gemms.formats, strict=True):
        moved = _bytes(mapped.buffer_elements[operand], fmt) * gemms.count
        level = device.buffer(operand)
        once = _bytes(_compulsory(operand, gemms), fmt) * gemms.count
        if level is None:
            main = moved
        else:
            traffic[level] = traffic.get(level, 0.0) + moved
            fits = _bytes(mapped.footprint[operand], fmt) <= device.level(level).capacity / 2
            main = once if fits else moved
        traffic[device.main.name] = traffic.get(device.main.name, 0.0) + main
    resource = {f"compute:{dtype}": gemms.count * mapped.cycles / hz}
    for name, moved in traffic.items():
        resource[f"memory:{name}"] = moved / level_bandwidth(device, device.level(name))
    detail = {"dataflow": device.array.dataflow, "cycles": f"{gemms.count * mapped.cycles}",
              "folds": f"{gemms.count * mapped.folds}", "array_utilization": f"{mapped.utilization:.4f}",
              "main_bytes_per_fold": f"{traffic[device.main.name] / (gemms.count * mapped.folds):.0f}"}
    return OpCost(op.label, op.flops, traffic[device.main.name], resource, traffic, detail=detail)


def _compulsory(operand: str, gemms: Gemms) -> int:
    """Elements of `operand` in one GEMM: A = M·K, B = K·N, C = M·N."""
    return {"ifmap": gemms.m * gemms.k, "filter": gemms.k * gemms.n, "ofmap": gemms.m * gemms.n}[operand]


def array_cycles(c: OpCost) -> int:
    """The cycles the array runs for an OpCost of this model (a roofline-priced op: its compute seconds)."""
    return int(c.detail["cycles"])


def mac_array_energy_j(c: OpCost, device: MacArray) -> float | None:
    """Joules: the array's cycles × PEs × `pe_energy`, plus bytes × `energy.per_byte` for the levels the spec
    prices (levels it does not price are not counted: its source says what it covers); None without
    `pe_energy`."""
    if device.array.pe_energy is None:
        return None
    prices = device.energy.per_byte if device.energy else {}
    moved = sum(b * prices[name] for name, b in c.bytes_per_level.items() if name in prices)
    return array_cycles(c) * device.array.pes * device.array.pe_energy + moved


def _sum(op: NetworkStep, costs: list[OpCost]) -> OpCost:
    """A network's layers run one after another: each resource's seconds and each level's bytes add up; the
    step takes the sum of its layers' times, held under the format most of that time ran in."""
    traffic: dict[str, float] = {}
    for c in costs:
        for name, moved in c.bytes_per_level.items():
            traffic[name] = traffic.get(name, 0.0) + moved
    cycles = sum(array_cycles(c) for c in costs)
    seconds: dict[str, float] = {}  # each layer's time under the format its compute ran in
    for c in costs:
        key = next(r for r in c.resource_s if r.startswith("compute:"))
        seconds[key] = seconds.get(key, 0.0) + c.time_s
    resource = {max(seconds, key=seconds.__getitem__): sum(seconds.values())}
    return OpCost(op.label, op.flops, sum(c.bytes for c in costs), resource, traffic,
                  detail={"layers": str(len(costs)), "cycles": str(cycles)})

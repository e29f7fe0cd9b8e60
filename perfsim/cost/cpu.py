"""The CPU cost model: the shared roofline, with threads, per-core bandwidth and SIMD-instruction kernels.

On `device.cores` threads (a scenario's `cores` sets them through `with_cores`):
- main memory serves at what the threads can draw (perfsim.cost.cpu_threads: Little's law or a measured
  per-core figure, capped per cluster and per chip), each thread streaming its share of the op's operands and
  the whole of those every thread reads (a norm's gain and bias: `read_whole`); caches at the roofline's
  per-level bandwidth;
- compute runs on the threads' share of the SIMD units, stretched by the parallel efficiency of splitting
  the op's work items (output columns, rows, heads) into ⌈work / threads⌉ chunks;
- T-MAC (LutGemm) costs its lookup instructions (`lut`) and its table build; a GEMM with quantised
  weights costs llama.cpp's dequantise-then-multiply instructions per weight; a softmax costs its
  exponentials and passes in SIMD instructions (perfsim.cost.cpu_kernels);
- each op on more than one thread pays one fork/join, on top of the calibrated op overhead;
- the cores run at `calibration.sustained_clock` (their all-core clock under vector load); a spec without it runs
  at roofline.DEFAULT_CPU_CLOCK_RATIO × its peak clock and its costs say `calibrated: false`.
"""

from __future__ import annotations

from perfsim.cost.cpu_kernels import dequant_kernel, simd_issue_per_cycle, softmax_instructions, width_factor
from perfsim.cost.cpu_threads import fork_join_s, main_bandwidth, parallel_efficiency
from perfsim.cost.derating import is_calibrated
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, compute_rate, compute_unit, level_bandwidth, place, roofline, unit_scale
from perfsim.errors import PerfsimError
from perfsim.hardware.cpu import Cpu
from perfsim.ops import Attention, Conv2d, Elementwise, Gemm, LutGemm, MoE, Norm, OpBase, Operand, Softmax


def cpu_cost(op: OpBase, device: Cpu, cache: Cache = "cold") -> OpCost:
    """What `op` costs on `device.cores` threads of a CPU (module doc). Raise PerfsimError for a non-CPU."""
    if device.kind != "cpu":
        raise PerfsimError(f"cpu_cost prices CPUs; {device.name} is a {device.kind}")
    threads = device.cores
    work = work_items(op)
    efficiency = parallel_efficiency(work, threads)
    base = roofline(op, device, cache)
    resource = kernel_resources(op, device, efficiency) or {
        key: seconds / efficiency for key, seconds in base.resource_s.items() if key.startswith("compute:")}
    active = min(threads, work)
    for name, moved in base.bytes_per_level.items():
        if name == device.main.name:
            # each active thread draws 1/active of the bandwidth and moves 1/active of the split traffic plus all of
            # the traffic it reads whole: (moved + (active − 1) × whole) / bandwidth; the chip moves `whole` once
            whole = sum(o.traffic for o in read_whole(op) if place(o, device, cache).name == name)
            resource[f"memory:{name}"] = (moved + (active - 1) * whole) / main_bandwidth(device, active)
        else:
            resource[f"memory:{name}"] = moved / level_bandwidth(device, device.level(name))
    overhead = base.overhead_s + fork_join_s(device, threads)
    return OpCost(op.label, op.flops, op.bytes, resource, base.bytes_per_level, overhead,
                  calibrated=is_calibrated(device))


def work_items(op: OpBase) -> int:
    """The independent pieces a CPU kernel splits across threads: output columns, rows, heads or elements."""
    if isinstance(op, Gemm):
        return op.n * (1 if op.weight_shared else op.batch)
    if isinstance(op, LutGemm):
        return op.n
    if isinstance(op, Softmax | Norm):
        return op.rows
    if isinstance(op, Attention):
        return op.batch * op.heads
    if isinstance(op, MoE):  # llama.cpp's mul_mat_id and PyTorch's expert loop: each expert's rows over all threads
        return op.expert_ffn // op.expert_tp
    if isinstance(op, Conv2d):
        return op.batch * op.out_channels
    if isinstance(op, Elementwise):
        return op.elements
    return 1


def read_whole(op: OpBase) -> list[Operand]:
    """The operands each thread reads whole rather than its share of: a norm's gain (and bias), which every row
    is scaled by. (A GEMM split over output columns also reads its activations whole on every thread; that is
    not counted: it is the small operand of a weight-streaming GEMM, and its work items do not grow with rows.)"""
    return [o for o in op.operands() if o.weight] if isinstance(op, Norm) else []


def simd_issue_rate(device: Cpu) -> float | None:
    """SIMD/FP instructions per second on all of `device`'s threads at the sustained clock."""
    per_cycle = simd_issue_per_cycle(device)
    if per_cycle is None:
        return None
    return per_cycle * device.cores * device.clock.peak * simd_scale(device)


def simd_scale(device: Cpu) -> float:
    """Sustained over datasheet issue rate of the SIMD pipes: their fp32 vector unit's unit_scale."""
    return unit_scale(device, compute_unit(device, "vector", "fp32")[1])


def kernel_resources(op: OpBase, device: Cpu, efficiency: float) -> dict[str, float] | None:
    """Busy seconds of a kernel the CPU model counts in instructions; None where the roofline's FLOPs price it."""
    if isinstance(op, LutGemm) and device.lut is not None:
        return tmac_resources(op, device, efficiency)
    if isinstance(op, Gemm) and op.weight_dtype is not None and dequant_kernel(op.weight_dtype) is not None:
        return llama_cpp_resources(op, device, efficiency)
    if isinstance(op, Softmax) and (rate := simd_issue_rate(device)) is not None:
        instructions = softmax_instructions(op.variant, op.elements, device)
        return {"compute:fp32": instructions / rate / efficiency}
    return None


def tmac_lookup_instructions(op: LutGemm, device: Cpu) -> float:
    """SIMD instructions of T-MAC's lookups: one TBL/PSHUFB returns `lookups_per_instruction` entries, and the
    kernel issues `simd_ops_per_table_lookup` instructions (shifts, masks, adds) per lookup instruction."""
    assert device.lut is not None
    return op.lookups / device.lut.lookups_per_instruction * op.simd_ops_per_table_lookup


def tmac_resources(op: LutGemm, device: Cpu, efficiency: float) -> dict[str, float]:
    """T-MAC: lookups on the SIMD pipes (`lut`), table builds on the vector units, both on the threads used."""
    assert device.lut is not None
    issue = device.lut.simd_issue_per_cycle_per_core * device.cores * device.clock.peak * simd_scale(device)
    dtype, rate = compute_rate(device, "vector", op.dtype)
    return {"lut": tmac_lookup_instructions(op, device) / issue / efficiency,
            f"compute:{dtype}": op.table_build_adds / rate}


def llama_cpp_instructions(op: Gemm, device: Cpu) -> float:
    """SIMD instructions of llama.cpp's dequantise-then-multiply GEMM: per weight per activation row."""
    kernel = dequant_kernel(op.weight_dtype or op.dtype)
    assert kernel is not None
    rows = op.batch * op.m
    return rows * op.n * op.k * kernel.per_weight / width_factor(device)


def llama_cpp_resources(op: Gemm, device: Cpu, efficiency: float) -> dict[str, float]:
    """llama.cpp's quantised GEMM on the SIMD pipes, as int8 dot-product work."""
    rate = simd_issue_rate(device)
    if rate is None:
        raise PerfsimError(f"{device.name} has no fp32 vector unit to run llama.cpp's quantised kernels on")
    return {"compute:int8": llama_cpp_instructions(op, device) / rate / efficiency}

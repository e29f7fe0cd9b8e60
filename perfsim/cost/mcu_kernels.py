"""What one MCU core does per cycle, and how each op splits into parallel regions of equal work items.

Per-core rates (cycles are a core's issue slots; an in-order core issues `issue_width` instructions a cycle):
- a MAC in a dtype with a kernel-library inner loop (spec `inner_loops`): the loop's instructions / issue
  width, or its MAC instructions × the cores sharing one FPU when the cluster's FPUs are fewer than its
  active cores (float dtypes), whichever is longer — macs per iteration over that;
- a MAC in an emulated dtype: one emulated multiply and add (spec `soft_float`) plus its two operand loads;
- a MAC without either: the unit's datasheet `per_cycle` peak;
- an elementwise FLOP: 1 cycle on an FPU or integer ALU, the soft-float add (or compare) when emulated;
  each element loaded or stored: 1 cycle.
Data-layout passes (im2col, transposes) cost LAYOUT_CYCLES_PER_ELEMENT per element moved.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost.roofline import compute_rate
from perfsim.dtypes import resolve_dtype
from perfsim.errors import PerfsimError
from perfsim.hardware.mcu import Mcu
from perfsim.models.mcu_training import ConvGrad, GemmGrad
from perfsim.ops import Attention, Conv2d, Elementwise, Gemm, Norm, OpBase, Softmax

LAYOUT_CYCLES_PER_ELEMENT = 2.0
"""An im2col or transpose copy loop moves an element with one load and one store (post-increment addressing
and hardware loops leave no other instruction in the loop on RI5CY): 2 issue slots per element."""

NAIVE_LOOP = (2, 1, 1)
"""(loads, MAC instructions, other) per MAC of a loop without register blocking, as PULP-TrainLib's depthwise
kernel (lib/sources/pulp_conv_naive_fp16.c, dw_kernel_forward_fp16: temp += w[...] * x[...] over a 2-D
window, channels split over cores): two loads, one FMA, one address update for the window's row step."""


@dataclass(frozen=True)
class Region:
    """One parallel region: `items` equal work items of `cycles_per_item` core cycles each."""

    name: str
    items: int
    cycles_per_item: float


@dataclass(frozen=True)
class Plan:
    """How an op runs on the cluster: parallel regions in order (a serial step, such as a final reduction, is a
    region of one item: one core works, the others wait at its barrier)."""

    dtype: str
    regions: tuple[Region, ...]
    layout_bytes: float = 0.0
    """Scratch the op needs in L1 besides its operands (an im2col buffer)."""


def compute_dtype(op: OpBase, device: Mcu) -> str:
    """The dtype `op` computes in on `device`: its own, or the first promotion a unit runs (int8 → int16, …)."""
    return compute_rate(device, op.engine, op.compute_dtype)[0]


def fpu_share(device: Mcu, dtype: str, cores: int) -> float:
    """Cores contending for one FPU when `cores` run float work (1 for integers or one FPU per core)."""
    if resolve_dtype(dtype).family != "float" or device.fpus is None or cores <= device.fpus:
        return 1.0
    return cores / device.fpus


def mac_cycles(device: Mcu, dtype: str, cores: int, naive: bool = False) -> float:
    """Core cycles per multiply-accumulate in `dtype` while `cores` cores run (module doc); `naive`: a loop
    without register blocking (NAIVE_LOOP) instead of the library's matrix-multiply inner loop."""
    if dtype in device.emulated:
        return device.soft_float[dtype].mac_cycles + 2
    loop = device.inner_loops.get(dtype)
    if naive:
        loads, macs, other = NAIVE_LOOP
        return max((loads + macs + other) / device.issue_width, macs * fpu_share(device, dtype, cores))
    if loop is not None:
        issue = loop.instructions / device.issue_width
        return max(issue, loop.mac_instructions * fpu_share(device, dtype, cores)) / loop.macs
    peaks = [u.per_cycle[dtype] for u in device.compute if u.per_cycle and dtype in u.per_cycle]
    if not peaks:
        raise PerfsimError(f"{device.name} gives no per-cycle rate for {dtype}")
    return 2 / max(peaks)


def flop_cycles(device: Mcu, dtype: str, compare: bool = False) -> float:
    """Core cycles of one elementwise FLOP (a compare when `compare`) in `dtype`."""
    if dtype in device.emulated:
        soft = device.soft_float[dtype]
        return soft.compare_cycles if compare else soft.add_cycles
    return 1.0


def mac_plan(op: OpBase, device: Mcu, cores: int) -> Plan | None:
    """The regions of a convolution or matrix product (PULP-TrainLib's im2col + matrix multiply, rows of the
    product split over cores); None for an op that is not one."""
    dtype = compute_dtype(op, device)
    width = resolve_dtype(dtype).bytes_per_element
    if isinstance(op, Conv2d):
        return _conv_plan(op, None, device, cores, dtype, width)
    if isinstance(op, ConvGrad):
        return _conv_plan(op.forward, op.wrt, device, cores, dtype, width)
    per_mac = mac_cycles(device, dtype, cores)
    if isinstance(op, Gemm | GemmGrad):
        gemm = op if isinstance(op, Gemm) else op.forward
        rows = gemm.n if isinstance(op, Gemm) or op.wrt == "input" else gemm.k
        transpose = 0 if isinstance(op, Gemm) else gemm.k * gemm.n  # the weight (IG) or input (WG) transpose
        regions = [Region("transpose", transpose, LAYOUT_CYCLES_PER_ELEMENT)] if transpose else []
        regions.append(Region("matmul", gemm.batch * rows, gemm.flops / 2 / (gemm.batch * rows) * per_mac))
        return Plan(dtype, tuple(regions))
    if isinstance(op, Attention):
        softmax = op.softmax_flops / op.scores * flop_cycles(device, dtype)
        per_query = op.scores / (op.batch * op.heads * op.q_len)
        rows = op.batch * op.heads * op.q_len
        return Plan(dtype, (Region("attention", rows, per_query * (2 * op.head_dim * per_mac + softmax)),))
    return None


def _conv_plan(conv: Conv2d, wrt: str | None, device: Mcu, cores: int, dtype: str, width: float) -> Plan:
    """Forward (`wrt` None), input-gradient or weight-gradient pass of a convolution.

    Dense (groups = 1): im2col of the pass's input (of x for forward and WG, of dy for IG; none for a 1×1,
    stride-1 forward or WG), the weight transpose for IG, then the matrix product with its rows (output
    channels; input channels for IG) split over cores. Depthwise: a naive loop, channels split over cores.
    """
    k2, cin, cout = conv.kernel**2, conv.in_channels, conv.out_channels
    pixels_out = conv.batch * conv.out_height * conv.out_width
    pixels_in = conv.batch * conv.height * conv.width
    if conv.groups > 1:
        per_mac = mac_cycles(device, dtype, cores, naive=True)
        return Plan(dtype, (Region("depthwise", conv.groups, conv.macs / conv.groups * per_mac),))
    per_mac = mac_cycles(device, dtype, cores)
    pointwise = conv.kernel == 1 and conv.stride == 1
    if wrt == "input":  # im2col of dy (padded) for every input pixel; the weights transposed (flipped)
        pixels, depth, rows = (0 if pointwise else pixels_in), cout * k2, cin
        regions = [Region("transpose", cout * cin * k2, LAYOUT_CYCLES_PER_ELEMENT)]
    else:  # im2col of x for every output pixel
        pixels, depth, rows = (0 if pointwise else pixels_out), cin * k2, cout
        regions = []
    if pixels:
        regions.insert(0, Region("im2col", pixels, depth * LAYOUT_CYCLES_PER_ELEMENT))
    regions.append(Region("matmul", rows, conv.macs / rows * per_mac))
    return Plan(dtype, tuple(regions), layout_bytes=pixels * depth * width)


def vector_plan(op: OpBase, device: Mcu) -> Plan:
    """An elementwise, norm or softmax op: per element its loads, stores and FLOPs, elements split over cores."""
    dtype = compute_dtype(op, device)
    if isinstance(op, Elementwise):
        items, per_item_flops, accesses = op.elements, op.flops_per_element, op.inputs + 1
    elif isinstance(op, Softmax | Norm):
        items = op.rows
        per_item_flops = op.flops / op.rows
        accesses = op.bytes / op.rows / resolve_dtype(dtype).bytes_per_element
    else:
        raise PerfsimError(f"the MCU model does not price {op.kind} ops")
    cycles = accesses / device.issue_width + per_item_flops * flop_cycles(device, dtype)
    return Plan(dtype, (Region(op.kind, items, cycles),))

"""The `pim` kind (Duplex, arXiv 2409.01141): an xPU and PIM units in its HBM stacks, each op placed by Op/B.

Two units share the chip's HBM stacks:
- the xPU, priced by `xpu_cost` as the accelerator model prices a GPU (perfsim.cost.accelerator: tiles and
  waves, the spec's calibration or the stated default derating): sustained compute R_x over the sustained
  external bandwidth B_x of the main memory level (duplex-logic-pim, uncalibrated: 0.7 × 989.4 TFLOP/s and
  0.8 × 3.35 TB/s = 2.68 TB/s);
- the PIM: S stacks, each with internal bandwidth b and compute r per dtype, so B_p = S·b and R_p = S·r.
  It runs the ops of the matrix engine (GEMMs, MoE experts, attention, softmax included) at R_p, reading
  every operand at B_p; vector-only ops (norms, elementwise, table lookups) stay on the xPU. A dtype the
  PIM lacks is computed in the next wider one it has (as on the xPU), else the op stays on the xPU.

Every op is launched from the host whichever unit runs it: on the PIM it pays one kernel launch
(perfsim.cost.derating.launch_s), on the xPU what its kernels pay; o below is that fixed overhead (the xPU's
split-KV attention pays two launches, its combine being a second kernel).

Placement: an op of F FLOPs and Q bytes runs where it finishes first. T_x = xpu_cost(op).time_s;
T_p = o + max(F/R_p, Q/B_p). Below both ridges both are memory bound and the PIM wins (B_p > B_x); with the
PIM compute bound and the xPU memory bound, the PIM wins while F/R_p < Q/B_x, i.e. below the crossover
Op/B = R_p/B_x (duplex-logic-pim: 5 × 21.3 TFLOP/s / 2.68 TB/s = 39.7 FLOP/B). A kernel keeping only a
fraction u of the xPU's cores busy streams at u·B_x, which raises its crossover to R_p/(u·B_x).

Co-processing (MoE experts and attention, as Duplex does): a share f of the op's work (experts, sequences;
a fluid split, not whole experts) runs on the PIM while 1 − f runs on the xPU. Alone the xPU side is busy
b = T_x − o, the PIM side p = T_p − o; both finish together at f* = b/(b + p), giving T = o + b·p/(b + p).
The xPU side's resources scale by 1 − f (fluid: its tile and wave structure is that of the whole op).

Contention for the shared HBM: every byte either unit reads leaves the DRAM banks through the TSVs into the
stack's base (logic) die, the path whose bandwidth is B_p; the xPU's bytes then cross the HBM PHY (B_x).
So an op's Q bytes hold the internal path for Q/B_p whoever reads them, and a co-processed op takes
T = o + max(b·p/(b + p), Q/B_p). Co-processing pays only when the PIM is compute bound (Op/B above
its ridge R_p/B_p); when the internal path binds, f is raised to the largest share the PIM finishes in
that time, f = min(1, (T − o)/p) (PIM bytes cost less energy).

Resources of the OpCost (where the op ran):
  compute:<dtype>  the xPU's units (accelerator model)            memory:hbm  external PHY: xPU bytes / B_x
  pim:<dtype>      the PIM's compute                               memory:pim  internal path: all bytes / B_p
`bytes_per_level` counts each byte once where it went: `hbm` (read by the xPU, its kernels' re-reads and
split partials included) or `pim` (read by the PIM). `calibrated` is False while the spec lacks a calibration
the xPU's default derating stands in for (perfsim.cost.derating.is_calibrated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from perfsim.cost.accelerator import accelerator_cost
from perfsim.cost.derating import bandwidth, is_calibrated, launch_s
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, promotions
from perfsim.errors import PerfsimError
from perfsim.hardware import Accelerator, Device, Pim
from perfsim.hardware.pim import PimStacks
from perfsim.ops import Attention, MoE, OpBase

Unit = Literal["xpu", "pim", "both"]
CO_PROCESSED = (MoE, Attention)
"""Ops whose work splits between the units (Duplex's expert and attention co-processing)."""
GAIN = 1e-9
"""Co-processing is chosen only when it beats the better single unit by more than this fraction."""
BYTES_PER_ENERGY_FIGURE = 32


@dataclass(frozen=True)
class Placement:
    """Where an op runs: `unit`, the share `pim_fraction` of its work on the PIM, and its seconds alone on
    each unit (`pim_s` None when the PIM cannot run it) and as placed (`time_s`)."""

    unit: Unit
    pim_fraction: float
    xpu_s: float
    pim_s: float | None
    time_s: float


def xpu_cost(op: OpBase, device: Device, cache: Cache = "cold") -> OpCost:
    """The op on the xPU alone, priced as the accelerator model prices a GPU (the one place that prices the xPU)."""
    return accelerator_cost(op, device, cache)


def pim_rate(stacks: PimStacks, dtype: str) -> tuple[str, float] | None:
    """(dtype used, FLOP/s of all stacks) for work in `dtype`, widening as the xPU does; None if no stack runs it."""
    for current in promotions(dtype):
        if current in stacks.peak_per_stack:
            return current, stacks.stacks * stacks.peak_per_stack[current]
    return None


def pim_bandwidth(stacks: PimStacks) -> float:
    """B_p: bytes/s the PIM logic of all stacks reads from its banks."""
    return stacks.stacks * stacks.internal_bandwidth_per_stack


def crossover_intensity(device: Pim, dtype: str = "fp16") -> float:
    """Op/B above which the xPU finishes an op first: R_p / B_x, B_x the xPU's sustained main-memory bandwidth
    (perfsim.cost.derating.bandwidth). Valid below the xPU's ridge for a kernel keeping every core streaming;
    one keeping a fraction u of them busy crosses over at R_p / (u·B_x).

    Raise PerfsimError if the PIM has no unit for `dtype`.
    """
    rate = pim_rate(device.pim, dtype)
    if rate is None:
        raise PerfsimError(f"{device.name}: its PIM has no unit for {dtype}")
    return rate[1] / bandwidth(device, device.main)


def _pim_flops(op: OpBase) -> float:
    """FLOPs the PIM executes: all of the op's work; MoE routed work stretched by its imbalance, as on the xPU."""
    flops = op.flops
    return flops + op.routed_flops * (op.imbalance - 1) if isinstance(op, MoE) else flops


def _plan(op: OpBase, device: Pim, cache: Cache) -> tuple[Placement, OpCost]:
    if not isinstance(device, Pim):
        raise PerfsimError(f"the pim cost model prices pim chips; {device.name} is of kind {device.kind}")
    xpu = xpu_cost(op, device, cache)
    rate = pim_rate(device.pim, op.compute_dtype) if op.engine == "matrix" else None
    if rate is None:
        return Placement("xpu", 0.0, xpu.time_s, None, xpu.time_s), _split(op, device, xpu, 0.0, None)
    dtype, flops_per_s = rate
    pim_compute_s = _pim_flops(op) / flops_per_s
    internal_s = op.bytes / pim_bandwidth(device.pim)
    pim_busy = max(pim_compute_s, internal_s)
    pim_s = launch_s(device) + pim_busy
    best: tuple[Unit, float, float] = ("pim", 1.0, pim_s) if pim_s <= xpu.time_s else ("xpu", 0.0, xpu.time_s)
    if isinstance(op, CO_PROCESSED) and pim_busy:
        busy = xpu.busiest[1]
        together = xpu.overhead_s + max(busy * pim_busy / (busy + pim_busy), internal_s)
        if together < best[2] * (1 - GAIN):
            best = ("both", min(1.0, (together - xpu.overhead_s) / pim_busy), together)
    unit, fraction, _ = best
    cost = _split(op, device, xpu, fraction, (f"pim:{dtype}", pim_compute_s))
    return Placement(unit, fraction, xpu.time_s, pim_s, cost.time_s), cost


def _split(op: OpBase, device: Pim, xpu: OpCost, fraction: float, pim_compute: tuple[str, float] | None) -> OpCost:
    """The OpCost with `fraction` of the op's work on the PIM and the rest on the xPU (module doc)."""
    keep = 1.0 - fraction
    resource = {name: seconds * keep for name, seconds in xpu.resource_s.items()} if keep else {}
    moved = {level: q * keep for level, q in xpu.bytes_per_level.items()} if keep else {}
    if pim_compute is not None and fraction:
        name, seconds = pim_compute
        resource[name] = seconds * fraction
        moved["pim"] = op.bytes * fraction
    from_stacks = moved.get(device.main.name, 0.0) + moved.get("pim", 0.0)
    resource["memory:pim"] = from_stacks / pim_bandwidth(device.pim)
    overhead = xpu.overhead_s if keep else launch_s(device)
    return OpCost(op.label, op.flops, op.bytes, resource, moved, overhead, calibrated=is_calibrated(device))


def pim_cost(op: OpBase, device: Pim, cache: Cache = "cold") -> OpCost:
    """What `op` costs on a pim chip, run where it finishes first (module doc). Raise PerfsimError if `device`
    is not a pim chip or nothing on it runs the op's dtype."""
    return _plan(op, device, cache)[1]


def placement(op: OpBase, device: Pim, cache: Cache = "cold") -> Placement:
    """Where `op` runs on a pim chip, its PIM share and its time alone on each unit."""
    return _plan(op, device, cache)[0]


def unit_of(cost: OpCost) -> Unit:
    """Which units an OpCost from `pim_cost` keeps busy, read from its resource names (for the engine)."""
    on_pim = any(name.startswith("pim:") for name in cost.resource_s)
    on_xpu = any(name.startswith("compute:") or name.startswith("lut") for name in cost.resource_s)
    return "both" if on_pim and on_xpu else "pim" if on_pim else "xpu"


def xpu_only(device: Pim) -> Accelerator:
    """The same chip without its PIM: the GPU-only baseline that differs from `device` in nothing else."""
    fields = device.model_dump(exclude={"pim"})
    return Accelerator.model_validate({**fields, "kind": "accelerator", "name": f"{device.name}-xpu-only",
                                       "description": f"{device.description}, PIM unused"})


def pim_energy_j(cost: OpCost, stacks: PimStacks, external_level: str = "hbm") -> float:
    """Dynamic energy (J) of an op: bytes over the external path (`external_level`, moved by the xPU) at
    energy_per_32b_host / 32 per byte, bytes over the internal path (`pim`) at energy_per_32b_pim / 32, and
    every FLOP at energy_per_flop. Works on any OpCost (a GPU's too: its main-memory bytes take the external
    path). Not charged: on-chip caches and links (no figure in the source), row activations, static power.
    Raise PerfsimError if the spec lacks an energy figure.
    """
    host, pim, flop = stacks.energy_per_32b_host, stacks.energy_per_32b_pim, stacks.energy_per_flop
    if host is None or pim is None or flop is None:
        raise PerfsimError("pim energy needs pim.energy_per_32b_host, pim.energy_per_32b_pim and "
                           "pim.energy_per_flop in the spec")
    external = cost.bytes_per_level.get(external_level, 0.0)
    internal = cost.bytes_per_level.get("pim", 0.0)
    return (external * host + internal * pim) / BYTES_PER_ENERGY_FIGURE + cost.flops * flop

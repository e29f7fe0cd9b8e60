"""The MCU cost model: an op's work split over the cluster's cores, at the kernel library's MAC/cycle, with
barriers, software-emulated floats and DMA tiling through L1.

For an op on `cores` cores (the op's own `cores` when it has one, capped by the device's; `--cores` sets the
device's), perfsim.cost.mcu_kernels / mcu_classic give its parallel regions, each of `items` equal items:
    region cycles = ⌈items / cores⌉ × cycles per item  (remainder cores idle at the barrier)
                    + fork_cycles + barrier_cycles      (spec `sync`; none on one core)
Compute seconds = Σ regions / (clock × clock_scale): a spec's `calibration.compute_efficiency` (and
`sustained_clock`) scales the cores' sustained throughput as perfsim.cost.roofline does for other kinds; barriers
run at the sustained clock, and DMA bytes/s stay the memory levels' own. The fabric controller only dispatches
the kernel: it computes nothing.
A cluster with an L1 scratchpad moves the operands by DMA from the level they live in, in double-buffered
tiles (perfsim.cost.mcu_memory); a single-core MCU reads them in place, overlapped with compute.
A `network` op is its layers' costs added. Data that does not fit its memory is an error.
"""

from __future__ import annotations

import math

from perfsim.cost.mcu_classic import classic_plan
from perfsim.cost.mcu_kernels import Plan, mac_plan, vector_plan
from perfsim.cost.mcu_memory import double_buffered, memory_seconds, scratchpad, tiles, traffic_bytes
from perfsim.cost.opcost import OpCost, in_sequence
from perfsim.cost.roofline import Cache, clock_ratio, clock_scale
from perfsim.errors import PerfsimError
from perfsim.hardware.mcu import Mcu
from perfsim.ops import OpBase
from perfsim.ops_network import NetworkStep


def mcu_cost(op: OpBase, device: Mcu, cache: Cache = "cold") -> OpCost:
    """What `op` costs on an MCU (module doc). Raise PerfsimError for a non-MCU, an op the model does not
    price, or data larger than the memory that must hold it. `cache` is unused: an MCU has no data cache
    in this model (its scratchpad is filled by DMA)."""
    if device.kind != "mcu":
        raise PerfsimError(f"mcu_cost prices MCUs; {device.name} is a {device.kind}")
    cores = active_cores(op, device)
    if isinstance(op, NetworkStep):
        limited = device.model_copy(update={"cores": cores})
        return _sum(op, [mcu_cost(layer, limited, cache) for layer in op.layers()])
    plan = plan_for(op, device, cores)
    compute_s = plan_cycles(plan, cores, device, sync=False) / (device.clock.peak * clock_scale(device))
    sync_s = sync_cycles(plan, cores, device) / (device.clock.peak * clock_ratio(device))
    traffic = traffic_bytes(op, device)
    memory = memory_seconds(device, traffic)
    key = f"compute:{plan.dtype}"
    if scratchpad(device) is None:
        resources = {key: compute_s} | {f"memory:{name}": s for name, s in memory.items()}
        return OpCost(op.label, op.flops, op.bytes, resources, traffic, sync_s, detail=_detail(plan, cores, 1))
    n = tiles(op, device, plan.layout_bytes)
    dma_s = sum(memory.values())
    total = double_buffered(compute_s, dma_s, n)
    resources = {key: compute_s} | {f"memory:{name}": s for name, s in memory.items()}
    overhead = total - max(compute_s, dma_s) + sync_s
    return OpCost(op.label, op.flops, op.bytes, resources, traffic, overhead, detail=_detail(plan, cores, n))


def active_cores(op: OpBase, device: Mcu) -> int:
    """Cores the op runs on: its own `cores` field when set (capped by the device's), else all of them."""
    wanted = getattr(op, "cores", None)
    return min(wanted, device.cores) if wanted else device.cores


def plan_for(op: OpBase, device: Mcu, cores: int) -> Plan:
    """The op's parallel regions on `cores` cores."""
    return mac_plan(op, device, cores) or classic_plan(op, device, cores) or vector_plan(op, device)


def plan_cycles(plan: Plan, cores: int, device: Mcu, sync: bool = True) -> float:
    """Cycles of the plan's regions on `cores` cores: the busiest core's ⌈items / cores⌉ items each, plus
    (with `sync`) each region's fork and barrier."""
    work = sum(math.ceil(r.items / cores) * r.cycles_per_item for r in plan.regions)
    return work + (sync_cycles(plan, cores, device) if sync else 0.0)


def sync_cycles(plan: Plan, cores: int, device: Mcu) -> float:
    """Fork and barrier cycles of the plan's parallel regions (none on one core or without a `sync` spec)."""
    if cores <= 1 or device.sync is None:
        return 0.0
    return len(plan.regions) * (device.sync.fork_cycles + device.sync.barrier_cycles)


def _sum(op: OpBase, parts: list[OpCost]) -> OpCost:
    """A network's layers one after another, as one cost (opcost.in_sequence), their overheads added."""
    return in_sequence(op.label, op.flops, parts, sum(part.overhead_s for part in parts),
                       {"layers": str(len(parts))})


def _detail(plan: Plan, cores: int, n_tiles: int) -> dict[str, str]:
    regions = ", ".join(f"{r.name} {r.items}" for r in plan.regions)
    return {"cores": str(cores), "regions": regions, "tiles": str(n_tiles)}

"""Collectives on a system: alpha-beta cost of ring algorithms, hierarchical across levels.

On one interconnect level with n ranks, each rank sends at
B = bandwidth_per_direction × usable links × bandwidth_efficiency, every step costs α:
  all_reduce      2(n−1)·α + 2(n−1)/n · S / B
  reduce_scatter   (n−1)·α +  (n−1)/n · S / B     (S: the whole per-rank buffer)
  all_gather       (n−1)·α +  (n−1)/n · S / B
  all_to_all       (n−1)·α +  (n−1)/n · S / B
  broadcast        (n−1)·α +            S / B     (pipelined chain)
A full mesh uses min(links, n−1) links in parallel; a switch, rails or ring uses all a
member's links. Across two levels (nodes of a chips): all_reduce = reduce-scatter inside
the node, all-reduce of S/a across nodes on each rail, all-gather inside the node; the
others run their node part and their cross-node part one after the other.
"""

from __future__ import annotations

from perfsim.cost.opcost import OpCost
from perfsim.errors import PerfsimError
from perfsim.hardware import Interconnect, System
from perfsim.ops import Collective

FACTORS = {  # (α steps per (n−1), byte factor numerator per (n−1)/n)
    "all_reduce": (2, 2),
    "reduce_scatter": (1, 1),
    "all_gather": (1, 1),
    "all_to_all": (1, 1),
}


def rank_bandwidth(link: Interconnect, n: int) -> float:
    """Bytes/s one rank sends on `link` with `n` ranks taking part."""
    links = min(link.links_per_member, n - 1) if link.topology == "full_mesh" else link.links_per_member
    calibration = link.calibration.bandwidth_efficiency
    return link.bandwidth_per_direction * links * (calibration.value if calibration else 1.0)


def step_latency(link: Interconnect) -> float:
    return link.calibration.latency.value if link.calibration.latency else link.latency


def flat_time(kind: str, size: float, n: int, link: Interconnect) -> float:
    """Seconds for a ring collective of `size` bytes over `n` ranks on one level."""
    if n == 1:
        return 0.0
    alpha, beta = step_latency(link), 1 / rank_bandwidth(link, n)
    if kind == "broadcast":
        return (n - 1) * alpha + size * beta
    steps, factor = FACTORS[kind]
    return steps * (n - 1) * alpha + factor * (n - 1) / n * size * beta


def collective_cost(op: Collective, system: System) -> OpCost:
    """OpCost of a collective on `system`; Raise PerfsimError if the group does not fit it."""
    n = op.group or system.chips
    if n > system.chips:
        raise PerfsimError(f"{op.kind}: group {n} exceeds the {system.chips} chips of {system.name}")
    levels = system.interconnects
    inner, per_node = levels[0]
    if n <= per_node or len(levels) == 1:
        seconds, link = flat_time(op.kind, op.size_bytes, n, inner), inner
    else:
        if n % per_node:
            raise PerfsimError(f"{op.kind}: group {n} must be a multiple of the {per_node} chips per node")
        outer = levels[1][0]
        nodes = n // per_node
        size = op.size_bytes
        if op.kind == "all_reduce":
            seconds = (flat_time("reduce_scatter", size, per_node, inner)
                       + flat_time("all_reduce", size / per_node, nodes, outer)
                       + flat_time("all_gather", size, per_node, inner))
        elif op.kind == "all_to_all":
            seconds = (flat_time("all_to_all", size * (per_node - 1) / (n - 1) * per_node / (per_node - 1)
                                 if per_node > 1 else 0.0, per_node, inner)
                       + flat_time("all_to_all", size * (n - per_node) / (n - 1) * nodes / (nodes - 1), nodes, outer))
        else:
            part = size if op.kind == "broadcast" else size / per_node
            seconds = flat_time(op.kind, part, nodes, outer) + flat_time(op.kind, size, per_node, inner)
        link = outer
    return OpCost(op.label, op.flops, 0.0, {f"link:{link.name}": seconds})


def bus_bandwidth(op: Collective, system: System, seconds: float) -> float:
    """nccl-tests' bus bandwidth for `op` taking `seconds` on `system`."""
    n = op.group or system.chips
    return op.bus_factor(n) * op.size_bytes / seconds if seconds else 0.0

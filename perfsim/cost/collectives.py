"""Collectives on a system: alpha-beta cost of ring algorithms, hierarchical across levels.

On one interconnect level with n ranks, each rank sends at
B = bandwidth_per_direction × usable links × bandwidth_efficiency, every step costs α:
  all_reduce      2(n−1)·α + 2(n−1)/n · S / B
  reduce_scatter   (n−1)·α +  (n−1)/n · S / B     (S: the whole per-rank buffer)
  all_gather       (n−1)·α +  (n−1)/n · S / B
  all_to_all       (n−1)·α +  (n−1)/n · S / B
  broadcast        (n−1)·α +            S / B     (pipelined chain)
With `algorithm=tree` (NCCL's double binary tree, each half of the data on one tree; a
rank is inner in one tree and a leaf in the other, so it sends 2S in an all-reduce, S in
a broadcast), all_reduce takes 2⌈log2 n⌉·α + 2S / B and broadcast ⌈log2 n⌉·α + S / B:
fewer latency steps than the ring, more bytes — trees win for small messages on many ranks.
A full mesh uses min(links, n−1) links in parallel; a switch, rails or ring uses all a
member's links, shared by the chips in that member (each GPU of a node drives its own
rail NIC). Across two levels (nodes of a chips): all_reduce = reduce-scatter inside the
node, all-reduce of S/a across nodes on each chip's rail, all-gather inside the node;
all_to_all sends (a−1)/n of the buffer inside the node and (n−a)/n across the rails;
the others run their cross-node part and their node part one after the other.
"""

from __future__ import annotations

import math

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


def links_used(link: Interconnect, n: int) -> int:
    """Links one member drives in parallel with `n` members taking part (a full mesh: one per peer)."""
    return min(link.links_per_member, n - 1) if link.topology == "full_mesh" else link.links_per_member


def rank_bandwidth(link: Interconnect, n: int, chips_per_member: int = 1) -> float:
    """Bytes/s one chip sends on `link` with `n` members taking part.

    A member's links are shared by its `chips_per_member` chips (a node's rail NICs:
    each GPU drives its own).
    """
    links = links_used(link, n)
    calibration = link.calibration.bandwidth_efficiency
    efficiency = calibration.value if calibration else 1.0
    return link.bandwidth_per_direction * links * efficiency / chips_per_member


def step_latency(link: Interconnect) -> float:
    return link.calibration.latency.value if link.calibration.latency else link.latency


def flat_time(kind: str, size: float, n: int, link: Interconnect, chips_per_member: int = 1,
              algorithm: str = "ring") -> float:
    """Seconds for a ring (or tree) collective of `size` bytes over `n` members of one level."""
    if n == 1:
        return 0.0
    alpha, beta = step_latency(link), 1 / rank_bandwidth(link, n, chips_per_member)
    if algorithm == "tree":  # reduce up and broadcast down ⌈log2 n⌉ levels, pipelined
        phases = 2 if kind == "all_reduce" else 1
        return phases * math.ceil(math.log2(n)) * alpha + phases * size * beta
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
    inner, a = levels[0]
    if n <= a or len(levels) == 1:
        seconds = flat_time(op.kind, op.size_bytes, n, inner, algorithm=op.algorithm)
        return OpCost(op.label, op.flops, 0.0, {f"link:{inner.name}": seconds})
    if n % a:
        raise PerfsimError(f"{op.kind}: group {n} must be a multiple of the {a} chips per node")
    outer, nodes, size = levels[1][0], n // a, op.size_bytes
    if op.kind == "all_reduce":
        seconds = (2 * flat_time("reduce_scatter", size, a, inner)
                   + flat_time("all_reduce", size / a, nodes, outer, a, op.algorithm))
    elif op.kind == "all_to_all":  # (a−1)/n of the buffer stays in the node, (n−a)/n crosses the rails
        seconds = ((a - 1) * step_latency(inner) + (a - 1) / n * size / rank_bandwidth(inner, a)
                   + (nodes - 1) * step_latency(outer) + (n - a) / n * size / rank_bandwidth(outer, nodes, a))
    else:
        part = size if op.kind == "broadcast" else size / a
        seconds = flat_time(op.kind, part, nodes, outer, a, op.algorithm) + \
            flat_time(op.kind, size, a, inner, algorithm=op.algorithm)
    return OpCost(op.label, op.flops, 0.0, {f"link:{outer.name}": seconds})


def bus_bandwidth(op: Collective, system: System, seconds: float) -> float:
    """nccl-tests' bus bandwidth for `op` taking `seconds` on `system`."""
    n = op.group or system.chips
    return op.bus_factor(n) * op.size_bytes / seconds if seconds else 0.0

"""Collectives on a system: alpha-beta cost of ring (or tree) algorithms whose levels pipeline.

Placement. The `group` members are chips 0, s, 2s, … of a block (s = `stride`), spanning
s·(group − 1) + 1 chips. A system's levels, innermost first, each join m_j members of c_j
chips (c_0 = 1: a node's level joins chips; a cluster's joins nodes of c_1 chips). The
collective crosses every level whose members are smaller than its span; the outermost of
them is the top level k. p_j, the group's chips inside one level-j member, is the whole
group when the span fits in c_j chips, 1 when s ≥ c_j, else c_j / s (s must divide c_j
and c_j / s divide the group); n_j = p_{j+1} / p_j members of level j take part
(p_{k+1} = group; a level with n_j = 1 carries nothing).

Bandwidth. On level j each rank sends at
B_j = bandwidth_per_direction × links used × bandwidth_efficiency / sharing:
a full mesh uses min(links, n_j − 1) links (one per peer; a pair shares one link), a
switch, ring or rails all a member's links; on rails every chip of a member drives its
own NIC (sharing c_j), elsewhere the group's p_j chips in a member share its links.
Every step costs α_j (the calibrated latency, else the link's).

Phases. Level j carries the part S / p_j of the buffer (S: the op's bytes):
  all_reduce      2(n_j − 1) steps, 2(n_j − 1)/n_j · S/p_j bytes per rank
                  (reduce-scatter up the levels, all-reduce on the top one, all-gather down)
  reduce_scatter   (n_j − 1) steps,   (n_j − 1)/n_j · S/p_j
  all_gather       (n_j − 1) steps,   (n_j − 1)/n_j · S/p_j
  broadcast        below the top: 2(n_j − 1) steps, (n_j − 1)/n_j · S/p_j (the root's
                   member scatters S/p_{j+1} shares, every member all-gathers them);
                   top: a pipelined chain, (n_k − 1) steps, S/p_k (each rail carries S/a)
  all_to_all       (n_j − 1) steps, (p_{j+1} − p_j)/group · S: the chunks for the ranks
                   reached over level j; below a rails level the cross-rail share
                   (p_k − 1)/p_k of the rail bytes crosses the node first (rails-only:
                   GPU i reaches only GPU i of other nodes)
  send             1 step, S on the top level (group 2: one link of a full mesh, a NIC on rails)
  tree             (all_reduce, broadcast) NCCL's double binary tree on the top level:
                   2⌈log2 n_k⌉ steps, 2S/p_k (broadcast: ⌈log2 n_k⌉, S/p_k)
One level (k = 0, p_0 = 1) gives the flat ring: all_reduce 2(n − 1)·α + 2(n − 1)/n · S/B,
reduce_scatter, all_gather, all_to_all (n − 1)·α + (n − 1)/n · S/B, broadcast (n − 1)·α + S/B.

Time. The buffer moves in chunks, so the levels pipeline: the latencies add, the slowest
level sets the bandwidth term,
  T = Σ_j steps_j · α_j + max_j bytes_j / B_j.
Each level's resource `link:<name>` is busy Σα + bytes_j / B_j, so the binding link is the
level with the largest bandwidth term. `bytes` is what each rank sends, Σ_j bytes_j (ring
all_reduce 2(n − 1)/n · S, all_gather, reduce_scatter, all_to_all (n − 1)/n · S, broadcast
and send S, plus cross-rail forwarding); `bytes_per_level` splits it by link.

By hand on the shipped specs (1 GiB = 2^30 B). mi300x-node: α = 1.186 µs,
B = 7 × 64 GB/s × 0.712 = 318.98 GB/s. mi300x-cluster adds Pollara rails, α = 5 µs,
B = 8 × 50 GB/s / 8 chips = 50 GB/s.
  all_reduce 1 GiB, group 8:  14α + 1.75 · 2^30/B = 16.6 µs + 5.891 ms = 5.907 ms
  group 16 (a = 8, N = 2):     14α + 2 × 5 µs + max(5.891 ms, 1 · 2^27 B / 50 GB/s = 2.684 ms) = 5.917 ms,
                               1.002 × one node (one phase after the other: 8.60 ms, 1.46 ×)
  broadcast 1 GiB, group 16:  14α + 5 µs + max(0.875 · 2^30/B = 2.945 ms, 2.684 ms) = 2.967 ms ≤ the all_reduce
  2 × mi300x joined (join()): one 64 GB/s xGMI link, no calibration: 2α + 2^30 / 64 GB/s = 16.78 ms
  send 64 MiB inside a node:  α + 2^26 / (64 GB/s × 0.712) = 1.474 ms; across nodes (stride 8):
                               5 µs + 2^26 / 50 GB/s = 1.347 ms; dgx-h100: 1.83 µs + 2^26 / 450 GB/s = 0.151 ms
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsim.cost.opcost import OpCost
from perfsim.errors import PerfsimError
from perfsim.hardware import Interconnect, System
from perfsim.ops import Collective

FACTORS = {  # (α steps per (n−1), byte factor numerator per (n−1)/n)
    "all_reduce": (2, 2),
    "reduce_scatter": (1, 1),
    "all_gather": (1, 1),
}


def links_used(link: Interconnect, n: int) -> int:
    """Links one member drives in parallel with `n` members taking part (a full mesh: one per peer)."""
    return min(link.links_per_member, n - 1) if link.topology == "full_mesh" else link.links_per_member


def rank_bandwidth(link: Interconnect, n: int, sharing: int = 1) -> float:
    """Bytes/s one chip sends on `link` with `n` members taking part, a member's links shared by `sharing` chips."""
    calibration = link.calibration.bandwidth_efficiency
    efficiency = calibration.value if calibration else 1.0
    return link.bandwidth_per_direction * links_used(link, n) * efficiency / sharing


def step_latency(link: Interconnect) -> float:
    return link.calibration.latency.value if link.calibration.latency else link.latency


@dataclass(frozen=True)
class Level:
    """One interconnect level a collective crosses: `n` members take part, each holding `held` of the group's chips."""

    link: Interconnect
    n: int
    held: int = 1
    sharing: int = 1

    @property
    def bandwidth(self) -> float:
        return rank_bandwidth(self.link, self.n, self.sharing)


@dataclass(frozen=True)
class Phase:
    """What one level does: `steps` latency steps and `bytes` each rank sends on it."""

    level: Level
    steps: float
    bytes: float

    @property
    def transfer_s(self) -> float:
        return self.bytes / self.level.bandwidth


def phases(kind: str, size: float, levels: list[Level], algorithm: str = "ring") -> list[Phase]:
    """The phases of a `kind` collective of `size` bytes over `levels` (innermost first), per the module docstring."""
    top, group = levels[-1], levels[-1].held * levels[-1].n
    result = []
    for level in levels:
        n, part = level.n, size / level.held
        if level is top and algorithm == "tree":
            repeats = 2 if kind == "all_reduce" else 1
            result.append(Phase(level, repeats * math.ceil(math.log2(n)), repeats * part))
        elif kind == "send":
            result.append(Phase(level, 1, part))
        elif kind == "broadcast":
            result.append(Phase(level, n - 1, part) if level is top else Phase(level, 2 * (n - 1), (n - 1) / n * part))
        elif kind == "all_to_all":
            result.append(Phase(level, n - 1, (n - 1) * level.held / group * size))
        else:
            steps, factor = FACTORS[kind]
            result.append(Phase(level, steps * (n - 1), factor * (n - 1) / n * part))
    if kind == "all_to_all" and top.link.topology == "rails" and len(result) > 1:
        rail, node = result[-1], result[-2]
        result[-2] = Phase(node.level, node.steps, node.bytes + rail.bytes * (top.held - 1) / top.held)
    return result


def pipelined_s(steps: list[Phase]) -> float:
    """Pipelined levels: every level's latency steps add, the slowest level's transfer sets the rest."""
    return sum(p.steps * step_latency(p.level.link) for p in steps) + max(p.transfer_s for p in steps)


def flat_time(kind: str, size: float, n: int, link: Interconnect, algorithm: str = "ring") -> float:
    """Seconds for a collective of `size` bytes over `n` members (chips) of one level."""
    return pipelined_s(phases(kind, size, [Level(link, n)], algorithm))


def _held(op: Collective, group: int, chips: int, link: str) -> int:
    """The group's chips inside one `chips`-chip domain of `link` (p of the docstring); Raise PerfsimError if uneven."""
    stride = op.stride
    if stride * (group - 1) + 1 <= chips:
        return group
    if stride >= chips:
        return 1
    if chips % stride or group % (chips // stride):
        raise PerfsimError(f"{op.kind}: group {group} with stride {stride} does not spread evenly over the "
                           f"{chips}-chip {link} domains: the stride must divide {chips} and {chips} / stride "
                           f"divide the group")
    return chips // stride


def levels_crossed(op: Collective, system: System) -> list[Level]:
    """The levels `op` crosses with their members taking part, innermost first; Raise PerfsimError if it cannot fit."""
    group = op.group or system.chips
    span = op.stride * (group - 1) + 1
    if group < 2:
        raise PerfsimError(f"{op.kind}: {system.name} has 1 chip; a collective needs at least 2")
    if span > system.chips:
        spread = f" with stride {op.stride} spans {span} chips, which" if op.stride > 1 else ""
        raise PerfsimError(f"{op.kind}: group {group}{spread} exceeds the {system.chips} chips of {system.name}")
    levels, chips, held = [], 1, 1
    for link, count in system.interconnects:
        outer = _held(op, group, chips * count, link.name)
        if outer > held:
            levels.append(Level(link, outer // held, held, chips if link.topology == "rails" else held))
        chips, held = chips * count, outer
    return levels


def collective_cost(op: Collective, system: System) -> OpCost:
    """OpCost of a collective on `system`, one `link:<name>` resource per level it crosses.

    Raise PerfsimError if the group does not fit the system or spreads unevenly over its members.
    """
    steps = phases(op.kind, op.size_bytes, levels_crossed(op, system), op.algorithm)
    latency = sum(p.steps * step_latency(p.level.link) for p in steps)
    resource = {f"link:{p.level.link.name}": latency + p.transfer_s for p in steps}
    per_link = {p.level.link.name: p.bytes for p in steps}
    return OpCost(op.label, op.flops, sum(p.bytes for p in steps), resource, per_link)


def bus_bandwidth(op: Collective, system: System, seconds: float) -> float:
    """nccl-tests' bus bandwidth for `op` taking `seconds` on `system`."""
    n = op.group or system.chips
    return op.bus_factor(n) * op.size_bytes / seconds if seconds else 0.0

"""Collectives on a system: algorithms (ring, tree, in-switch reduction, direct) × wire protocols, levels pipelined.

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
switch, ring or network all a member's links; on a network (rails, fat_tree) every chip of a
member drives its own NIC (sharing c_j), elsewhere the group's p_j chips in a member share its links.

Phases (the algorithm's steps and the bytes each rank sends on level j; level j carries S / p_j):
  ring       all_reduce 2(n_j − 1) steps, 2(n_j − 1)/n_j · S/p_j (reduce-scatter up the levels,
             all-reduce on the top one, all-gather down); reduce_scatter, all_gather (n_j − 1),
             (n_j − 1)/n_j · S/p_j; broadcast below the top 2(n_j − 1), (n_j − 1)/n_j · S/p_j (scatter +
             all-gather), on the top a pipelined chain (n_k − 1) steps, S/p_k (each rail carries S/a)
  tree       (all_reduce, broadcast) ring below the top; on a top network level NCCL's double binary
             tree: 2⌈log2 n_k⌉ steps, 2S/p_k (broadcast ⌈log2 n_k⌉, S/p_k); on a top level inside a node
             NCCL's tree is a chain: 2(n_k − 1) steps, 2S/p_k (broadcast n_k − 1, S/p_k)
  nvls       (all_reduce) on each level whose switch reduces in the network: one step of the switch's
             latency, (n_j + 1)/n_j · S/p_j (a rank sends its buffer to the switch's reducing loads and
             its reduced 1/n_j share to the multicast store), at the switch's calibrated efficiency;
             ring on the other levels
  direct     all_to_all (p_{j+1} − p_j)/group · S (the chunks for the ranks reached over level j) in
             one step on a full mesh or switch (a link or port per peer: the n_j − 1 chunks go at once), in
             n_j − 1 steps elsewhere (one destination per step); rails-only: the cross-rail
             share (p_k − 1)/p_k of the rail bytes crosses the node first; send: 1 step, S on the top level

Protocols (NCCL's tuning model, src/graph/tuning.cc, NVIDIA/nccl 5067397: baseLatencies and
hwLatencies for Ring, llMaxBws aside; "NVLINK" for links inside a node, "NET" for networks):
  protocol   once per op   per step, over LL       share of link bandwidth
  ll         6.6 µs        +0 / +0 µs              1/2    (an 8-byte flag per 8 bytes of data)
  ll128      14.0 µs       +1.3 / +1.3 µs          120/128 (8 flag bytes per 128-byte line)
  simple     8.4 µs        +2.8 / +11.3 µs         1
The link's α (`latency`, or its calibration) is one LL step; the protocol's extra per-step latency
is NCCL's hwLatency(protocol) − hwLatency(LL) (NVLink: 0.6, 1.9, 3.4 µs; NET: 2.7, 4.0, 14.0 µs).
In-switch reduction steps take the switch's own (calibrated) latency and need no protocol term.

Time. The buffer moves in chunks, so the levels pipeline: the latencies add, the slowest level sets
the bandwidth term,
  T = base_p + Σ_j steps_j · (α_j + extra_p,j) + max_j bytes_j / (B_j · share_p).
Each level's resource `link:<name>` is busy base + Σ latency + its own transfer, so the binding link
is the level with the largest bandwidth term. `bytes` is what each rank sends, Σ_j bytes_j.

The library's choice (`algorithm=auto`, `protocol=auto`): every algorithm the kind offers (nvls only
where a crossed switch reduces in the network) × every protocol (nvls: simple), the least predicted T,
as NCCL's tuner picks the least of its own latency + size / bandwidth table; ties go to the earlier
in ALGORITHMS and PROTOCOLS order. An explicit `algorithm=` or `protocol=` restricts the choice.

By hand on mi300x-node (α = 0.714 µs, B = 7 × 64 GB/s × 0.7125 = 319.2 GB/s), ring all_reduce of S
on 8 GPUs: ll 16.6 µs + 3.5 S/B, ll128 42.2 µs + 1.867 S/B, simple 57.6 µs + 1.75 S/B: LL up to
S = 25.6 µs · B / 1.633 = 5.00 MB, LL128 up to 15.4 µs · B / 0.1167 = 42.1 MB, Simple above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsim.cost.opcost import OpCost
from perfsim.errors import PerfsimError
from perfsim.hardware import Interconnect, System
from perfsim.hardware.system import LinkCalibration
from perfsim.ops import ALGORITHMS, PROTOCOLS, Collective

FACTORS = {  # (α steps per (n−1), byte factor numerator per (n−1)/n)
    "all_reduce": (2, 2),
    "reduce_scatter": (1, 1),
    "all_gather": (1, 1),
}


@dataclass(frozen=True)
class Protocol:
    """A wire protocol: fixed latency once per op, extra latency per step (inside a node, on a network), share."""

    name: str
    base_s: float
    extra_step_s: tuple[float, float]
    bandwidth_share: float

    def extra(self, link: Interconnect) -> float:
        return self.extra_step_s[1] if link.network else self.extra_step_s[0]


PROTOCOL = {
    "ll": Protocol("ll", 6.6e-6, (0.0, 0.0), 0.5),
    "ll128": Protocol("ll128", 14.0e-6, (1.3e-6, 1.3e-6), 120 / 128),
    "simple": Protocol("simple", 8.4e-6, (2.8e-6, 11.3e-6), 1.0),
}
WIRE = Protocol("wire", 0.0, (0.0, 0.0), 1.0)  # the bare alpha-beta algorithm, no library protocol


def links_used(link: Interconnect, n: int) -> int:
    """Links one member drives in parallel with `n` members taking part (a full mesh: one per peer)."""
    return min(link.links_per_member, n - 1) if link.topology == "full_mesh" else link.links_per_member


def _efficiency(calibration: LinkCalibration) -> float:
    return calibration.bandwidth_efficiency.value if calibration.bandwidth_efficiency else 1.0


def rank_bandwidth(link: Interconnect, n: int, sharing: int = 1, calibration: LinkCalibration | None = None) -> float:
    """Bytes/s one chip sends on `link` with `n` members taking part, a member's links shared by `sharing` chips,
    at the efficiency of `calibration` (default: the link's own)."""
    efficiency = _efficiency(calibration or link.calibration)
    return link.bandwidth_per_direction * links_used(link, n) * efficiency / sharing


def step_latency(link: Interconnect) -> float:
    """Seconds of one LL step on `link`: its calibrated α, else its spec latency."""
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
    """What one level does: `steps` latency steps and `bytes` each rank sends on it (in the switch if `in_network`)."""

    level: Level
    steps: float
    bytes: float
    in_network: bool = False

    def step_s(self, protocol: Protocol) -> float:
        reduction = self.level.link.in_network_reduction
        if self.in_network and reduction:
            calibrated = reduction.calibration.latency
            return calibrated.value if calibrated else reduction.latency
        return step_latency(self.level.link) + protocol.extra(self.level.link)

    def transfer_s(self, protocol: Protocol) -> float:
        level, reduction = self.level, self.level.link.in_network_reduction
        if self.in_network and reduction:
            return self.bytes / rank_bandwidth(level.link, level.n, level.sharing, reduction.calibration)
        return self.bytes / (self.level.bandwidth * protocol.bandwidth_share)


def _tree_phase(kind: str, level: Level, part: float) -> Phase:
    """The tree on the top level: a double binary tree across a network, a chain inside a node."""
    depth = math.ceil(math.log2(level.n)) if level.link.network else level.n - 1
    repeats = 2 if kind == "all_reduce" else 1
    return Phase(level, repeats * depth, repeats * part)


def phases(kind: str, size: float, levels: list[Level], algorithm: str = "ring") -> list[Phase]:
    """The phases of a `kind` collective of `size` bytes over `levels` (innermost first), per the module docstring."""
    top, group = levels[-1], levels[-1].held * levels[-1].n
    result = []
    for level in levels:
        n, part = level.n, size / level.held
        if algorithm == "nvls" and level.link.in_network_reduction:
            result.append(Phase(level, 1, (n + 1) / n * part, in_network=True))
        elif level is top and algorithm == "tree":
            result.append(_tree_phase(kind, level, part))
        elif kind == "send":
            result.append(Phase(level, 1, part))
        elif kind == "broadcast":
            result.append(Phase(level, n - 1, part) if level is top else Phase(level, 2 * (n - 1), (n - 1) / n * part))
        elif kind == "all_to_all":
            at_once = level.link.topology in ("full_mesh", "switch")
            result.append(Phase(level, 1 if at_once else n - 1, (n - 1) * level.held / group * size))
        else:
            steps, factor = FACTORS[kind]
            result.append(Phase(level, steps * (n - 1), factor * (n - 1) / n * part))
    if kind == "all_to_all" and top.link.topology == "rails" and len(result) > 1:
        rail, node = result[-1], result[-2]
        result[-2] = Phase(node.level, node.steps, node.bytes + rail.bytes * (top.held - 1) / top.held)
    return result


def latency_s(steps: list[Phase], protocol: Protocol) -> float:
    """The protocol's fixed cost (when any step uses it) plus every level's latency steps."""
    base = protocol.base_s if any(not p.in_network for p in steps) else 0.0
    return base + sum(p.steps * p.step_s(protocol) for p in steps)


def pipelined_s(steps: list[Phase], protocol: Protocol = WIRE) -> float:
    """Pipelined levels: every level's latency steps add, the slowest level's transfer sets the rest."""
    return latency_s(steps, protocol) + max(p.transfer_s(protocol) for p in steps)


def flat_time(kind: str, size: float, n: int, link: Interconnect, algorithm: str = "ring",
              protocol: Protocol = WIRE) -> float:
    """Seconds for a collective of `size` bytes over `n` members (chips) of one level (default: bare alpha-beta)."""
    return pipelined_s(phases(kind, size, [Level(link, n)], algorithm), protocol)


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
            levels.append(Level(link, outer // held, held, chips if link.network else held))
        chips, held = chips * count, outer
    return levels


@dataclass(frozen=True)
class Choice:
    """The algorithm and protocol a collective runs, its phases and predicted seconds."""

    algorithm: str
    protocol: str
    steps: list[Phase]
    seconds: float


def _candidates(op: Collective, levels: list[Level], system: System) -> list[tuple[str, str]]:
    in_switch = any(level.link.in_network_reduction for level in levels)
    if op.algorithm == "nvls" and not in_switch:
        raise PerfsimError(f"{op.kind}: algorithm 'nvls' needs a switch that reduces in the network; no level of "
                           f"{system.name} this group crosses declares in_network_reduction")
    algorithms = [op.algorithm] if op.algorithm != "auto" else \
        [a for a in ALGORITHMS[op.kind] if a != "nvls" or in_switch]
    return [(a, p) for a in algorithms for p in (PROTOCOLS if op.protocol == "auto" else (op.protocol,))
            if a != "nvls" or p == "simple"]


def choose(op: Collective, system: System) -> Choice:
    """The library's choice for `op` on `system`: the least predicted time over algorithm × protocol.

    Raise PerfsimError if the group does not fit the system, spreads unevenly, or asks for nvls without a
    reducing switch.
    """
    levels = levels_crossed(op, system)
    best: Choice | None = None
    for algorithm, protocol in _candidates(op, levels, system):
        steps = phases(op.kind, op.size_bytes, levels, algorithm)
        seconds = pipelined_s(steps, PROTOCOL[protocol])
        if best is None or seconds < best.seconds:
            best = Choice(algorithm, protocol, steps, seconds)
    assert best is not None  # every kind offers at least one algorithm and one protocol
    return best


def collective_cost(op: Collective, system: System) -> OpCost:
    """OpCost of a collective on `system` as the library runs it, one `link:<name>` resource per level it crosses.

    Raise PerfsimError if the group does not fit the system or spreads unevenly over its members.
    """
    choice = choose(op, system)
    protocol = PROTOCOL[choice.protocol]
    latency = latency_s(choice.steps, protocol)
    resource = {f"link:{p.level.link.name}": latency + p.transfer_s(protocol) for p in choice.steps}
    per_link = {p.level.link.name: p.bytes for p in choice.steps}
    return OpCost(op.label, op.flops, sum(p.bytes for p in choice.steps), resource, per_link,
                  detail={"algorithm": choice.algorithm, "protocol": choice.protocol})


def bus_bandwidth(op: Collective, system: System, seconds: float) -> float:
    """nccl-tests' bus bandwidth for `op` taking `seconds` on `system`."""
    n = op.group or system.chips
    return op.bus_factor(n) * op.size_bytes / seconds if seconds else 0.0

"""A step's trace as the engine sees it: per pipeline stage, the send into it and its layer blocks.

A trace lists a stage's ops layer-major: runs of identical layers appear once with `repeat`.
Consecutive trace ops of one stage with the same repeat form a block, run `repeat` times in a
row (layer 1's ops, then layer 2's, ...). The pipeline send is the collective that opens a
stage after the first. Chips of a stage run identical shares in lockstep, so the first chip
of the stage stands for all of them. On a pim chip an op placed on the PIM alone
(perfsim.cost.pim.unit_of) runs on the chip's "pim" stream and holds its PIM, not the xPU's
matrix engine, so it can overlap xPU work of another micro-batch.

`walk` runs one micro-batch through a stage's blocks, op after op, each op's first run in the
chain waiting for its stream's previous op (another micro-batch's). Runs 2…r of a block are
one pure chain, so they are computed in closed form — never op by op — whatever r is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from perfsim.cost import OpCost
from perfsim.cost.pim import unit_of
from perfsim.models.trace import Trace
from perfsim.ops import Collective

Stream = Literal["compute", "comm", "p2p", "pim"]
STREAMS: tuple[Stream, ...] = ("compute", "comm", "p2p", "pim")


@dataclass(frozen=True)
class Slot:
    """One op of a block on its stage's representative `chip`: alone it takes `seconds` (overhead + busiest)."""

    name: str
    chip: int
    stream: Stream
    engine: str | None
    demands: dict[str, float]
    overhead_s: float
    bound: str

    @property
    def seconds(self) -> float:
        return self.overhead_s + max(self.demands.values(), default=0.0)


@dataclass(frozen=True)
class Block:
    """`slots` run in order, `repeat` times in a row (a run of identical layers)."""

    slots: tuple[Slot, ...]
    repeat: int

    @property
    def seconds(self) -> float:
        """One run of the block, its ops one after another."""
        total = 0.0
        for slot in self.slots:
            total += slot.seconds
        return total


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its chips, the send that brings it a micro-batch (none for stage 0), its blocks."""

    chips: tuple[int, ...]
    send: Slot | None
    blocks: tuple[Block, ...]

    @property
    def chain(self) -> tuple[Block, ...]:
        """What one micro-batch runs on the stage: the send, then the blocks."""
        return ((Block((self.send,), 1),) if self.send else ()) + self.blocks


def demands_of(cost: OpCost, chip: int, engine: str | None) -> dict[str, float]:
    """An op's resource seconds keyed per chip: compute and table lookups go to its engine, overlapping there as
    in the cost model (the longer of the two), so an op alone takes its cost's time; PIM compute (any dtype) goes
    to the chip's PIM, `chipN:pim`, the engine of a PIM-placed op."""
    demands: dict[str, float] = {}
    for resource, seconds in cost.resource_s.items():
        kind = resource.split(":", 1)[0]
        unit = engine if kind in ("compute", "lut") else "pim" if kind == "pim" else resource
        key = f"chip{chip}:{unit}"
        demands[key] = max(demands.get(key, 0.0), seconds)
    return demands


def stages_of(trace: Trace, costs: list[OpCost]) -> list[Stage]:
    """The trace's stages, each as its send and its blocks of consecutive ops with equal repeat."""
    stages = []
    for stage, group in groupby(zip(trace.ops, costs, strict=True), key=lambda pair: pair[0].stage):
        pairs = list(group)
        chips, send = pairs[0][0].chips, None
        if stage > 0 and isinstance(pairs[0][0].op, Collective):
            send = _slot(*pairs.pop(0), stream="p2p")
        blocks = tuple(Block(tuple(_slot(top, c) for top, c in run), repeat)
                       for repeat, run in groupby(pairs, key=lambda pair: pair[0].repeat))
        stages.append(Stage(chips, send, blocks))
    return stages


def _slot(top, c: OpCost, stream: Stream | None = None) -> Slot:
    """The op on its stage's first chip: a collective on `stream` (default "comm") holding no engine, an op on the
    PIM alone on the "pim" stream holding the PIM, any other op on the "compute" stream holding its engine."""
    chip = top.chips[0]
    if isinstance(top.op, Collective):
        stream, engine = stream or "comm", None
    elif unit_of(c) == "pim":
        stream, engine = "pim", "pim"
    else:
        stream, engine = "compute", top.op.engine
    return Slot(top.op.label, chip, stream, engine, demands_of(c, chip, engine), c.overhead_s, c.bound)


Emit = Callable[[Slot, float, float, int, float, Stream | None, int | None], None]


def walk(blocks: Sequence[Block], t: float, ready: dict[str, float], emit: Emit | None = None) -> float:
    """Run `blocks` as one chain from time `t`; return when it ends.

    The chain's first op of each stream starts no earlier than `ready[stream]` (when that
    stream's previous op ends); `ready` is updated to this chain's last op of each stream.
    `emit(slot, start, end, runs, period, waited_for, block)` receives every op: a block's first
    run op by op (`waited_for` the stream whose previous op it waited for, or None; `block`
    None), its other runs as one call per op with runs = repeat − 1, period = one run of the
    block and `block` its index in `blocks`.
    """
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        for slot in block.slots:
            start, waited = t, None
            if slot.stream not in seen:
                seen.add(slot.stream)
                if ready.get(slot.stream, 0.0) > t:
                    start, waited = ready[slot.stream], slot.stream
            t = start + slot.seconds
            ready[slot.stream] = t
            if emit:
                emit(slot, start, t, 1, 0.0, waited, None)
        if block.repeat > 1:
            period, base, offset = block.seconds, t, 0.0
            for slot in block.slots:
                start = base + offset
                offset += slot.seconds
                t = base + offset + (block.repeat - 2) * period  # this op's last run ends
                ready[slot.stream] = t
                if emit:
                    emit(slot, start, base + offset, block.repeat - 1, period, None, index)
    return t


def pipeline_s(stages: Sequence[Stage], micro_batches: int) -> float:
    """Σ_s (T_s + send_s) + (m − 1) · max_s max(T_s, send_s): m micro-batches through the stages with
    each stage and each send busy with one micro-batch at a time (T_s: one micro-batch's ops on stage s
    one after another; send_s: the send into it)."""
    total, slowest = 0.0, 0.0
    for stage in stages:
        send = stage.send.seconds if stage.send else 0.0
        body = walk(stage.blocks, 0.0, {})
        total += send + body
        slowest = max(slowest, send, body)
    return total + (micro_batches - 1) * slowest

"""A model step on the engine: exact closed-form chains where no two ops can slow each other, simpy where they can.

Each micro-batch runs every stage's ops one after another; a chip's compute ops, its
collectives, the pipeline sends into it and its PIM-placed ops each keep issue order on
their own stream. Ops overlap only across micro-batches (one micro-batch's trailing
all-reduce under the next one's first ops, a send under a stage's work, a PIM op under
the next micro-batch's xPU ops), and they contend only if they share a resource (on a pim
chip every op's bytes cross the stacks' internal path, memory:pim). When no two streams of
a chip share one — always with one micro-batch, whose step is a single chain — every op
takes its solo time and the schedule is the max-plus recurrence `walk` computes: one call
per op of a block's first run, one per op for all its other runs, whatever the layer count.
Otherwise the ops run op by op on simpy.
"""

from __future__ import annotations

from collections import defaultdict

from perfsim.cost import OpCost
from perfsim.engine.blocks import Slot, Stage, Stream, stages_of, walk
from perfsim.engine.simulate import Schedule, simulate
from perfsim.engine.tasks import Task, tasks_from_stages
from perfsim.models.trace import Trace

Item = tuple[int, Stream | None, int | None]  # task id, the stream it waited for, its repeated group


def schedule_step(trace: Trace, costs: list[OpCost], micro_batches: int = 1) -> Schedule:
    """The schedule of `micro_batches` micro-batches of `trace` (costs in trace order)."""
    stages = stages_of(trace, costs)
    if micro_batches > 1 and contended(stages):
        return simulate(tasks_from_stages(stages, micro_batches))
    return chain_schedule(stages, micro_batches)


def contended(stages: list[Stage]) -> bool:
    """Whether two streams of one chip use a common resource (only then can concurrent ops slow each other)."""
    for stage in stages:
        used: dict[str, set[str]] = defaultdict(set)
        for block in stage.chain:
            for slot in block.slots:
                used[slot.stream] |= slot.demands.keys()
        sets = list(used.values())
        if any(a & b for i, a in enumerate(sets) for b in sets[i + 1:]):
            return True
    return False


class _Recorder:
    """Collects the ops `walk` emits as tasks, and per (stage, micro-batch) chain its items in order."""

    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.start: list[float] = []
        self.end: list[float] = []
        self.period: list[float] = []
        self.chains: dict[tuple[int, int], list[Item]] = {}

    def chain(self, stage: int, chips: tuple[int, ...], mb: int):
        items = self.chains[(stage, mb)] = []

        def emit(slot: Slot, start: float, end: float, runs: int, period: float, waited: Stream | None,
                 block: int | None) -> None:
            items.append((len(self.tasks), waited, block))
            self.tasks.append(Task(len(self.tasks), slot.name, slot.chip, chips, slot.stream, slot.engine,
                                   slot.demands, slot.overhead_s, (), slot.bound, mb, runs))
            self.start.append(start)
            self.end.append(end)
            self.period.append(period)

        return emit


def chain_schedule(stages: list[Stage], micro_batches: int) -> Schedule:
    """Micro-batch after micro-batch through the stages, each op at its solo time (exact without contention)."""
    record = _Recorder()
    ready: list[dict[str, float]] = [{} for _ in stages]
    t = 0.0
    for mb in range(micro_batches):
        t = 0.0
        for s, stage in enumerate(stages):
            t = walk(stage.chain, t, ready[s], record.chain(s, stage.chips, mb))
    path = _critical_path(record.chains, record.tasks, len(stages) - 1, micro_batches - 1) if record.tasks else []
    return Schedule(record.tasks, record.start, record.end, record.period, t, path)


def _critical_path(chains: dict[tuple[int, int], list[Item]], tasks: list[Task], stage: int,
                   mb: int) -> list[tuple[int, int]]:
    """Back from the last chain's last op: within a chain to the latest op that waited for its stream (then to
    that stream's last op in the previous micro-batch's chain on the stage) or to the chain's start (then to
    the end of the previous stage's chain)."""
    path: list[tuple[int, int]] = []
    stream: Stream | None = None  # None: leave a chain at its last op, else at its last op of this stream
    while True:
        items = chains[(stage, mb)]
        last = len(items) - 1 if stream is None else max(
            i for i, (task, _, _) in enumerate(items) if tasks[task].stream == stream)
        waited = next((i for i in range(last, -1, -1) if items[i][1] is not None), None)
        segment = [(task, tasks[task].repeat) for task, _, _ in items[waited or 0:last + 1]]
        group = items[last][2]
        if group is not None:  # left in the middle of a block's last run: the block's later ops ran one run less
            segment += [(task, tasks[task].repeat - 1) for task, _, g in items[last + 1:] if g == group]
        path = segment + path
        if waited is not None:
            stream, mb = items[waited][1], mb - 1
        elif stage > 0:
            stream, stage = None, stage - 1
        else:
            return path

"""Tasks for the simpy engine: a step's blocks expanded into op executions with dependencies and demands.

Expansion is layer-major (a block's ops for layer 1, then for layer 2, ...) and micro-batch by
micro-batch; each op depends on the one before it in its micro-batch. It is bounded: a step
whose ops can contend (see perfsim.engine.chains) is simulated op by op, at most
`MAX_TASKS` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.engine.blocks import Stage, Stream
from perfsim.errors import PerfsimError

MAX_TASKS = 200_000


@dataclass(frozen=True)
class Task:
    """One op execution (or `repeat` identical ones in a row): `demands` are seconds per resource when alone;
    it waits for `deps` (task ids).

    `chip` is the simulated chip; `chips` the chips it stands for in the timeline.
    """

    id: int
    name: str
    chip: int
    chips: tuple[int, ...]
    stream: Stream
    engine: str | None
    demands: dict[str, float]
    overhead_s: float
    deps: tuple[int, ...]
    bound: str
    micro_batch: int = 0
    repeat: int = 1


def tasks_from_stages(stages: list[Stage], micro_batches: int = 1) -> list[Task]:
    """Every op execution of `micro_batches` micro-batches through `stages`, layer-major, as a dependency chain
    per micro-batch. Raise PerfsimError beyond MAX_TASKS."""
    per_micro_batch = sum(len(b.slots) * b.repeat for stage in stages for b in stage.chain)
    if per_micro_batch * micro_batches > MAX_TASKS:
        raise PerfsimError(f"the discrete-event engine would simulate {per_micro_batch * micro_batches:,} contended "
                           f"op executions (at most {MAX_TASKS:,}); use --engine analytic or fewer micro-batches")
    tasks: list[Task] = []
    for mb in range(micro_batches):
        previous: tuple[int, ...] = ()
        for stage in stages:
            for block in stage.chain:
                for _ in range(block.repeat):
                    for slot in block.slots:
                        tasks.append(Task(len(tasks), slot.name, slot.chip, stage.chips, slot.stream, slot.engine,
                                          slot.demands, slot.overhead_s, previous, slot.bound, mb))
                        previous = (len(tasks) - 1,)
    return tasks

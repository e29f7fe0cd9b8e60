"""Tasks for the discrete-event engine: a step's trace expanded into ops with dependencies and demands.

Chips of one pipeline stage run identical shares in lockstep (tensor- and data-parallel
ranks are symmetric), so the engine simulates one representative chip per stage and the
timeline shows its events on every chip of the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from perfsim.cost import OpCost
from perfsim.models.trace import Trace
from perfsim.ops import Collective

Stream = Literal["compute", "comm"]


@dataclass(frozen=True)
class Task:
    """One op execution: `demands` are seconds per resource when alone; it waits for `deps` (task ids).

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


def demands_of(cost: OpCost, chip: int, engine: str | None) -> dict[str, float]:
    """An op's resource seconds keyed per chip: compute and table lookups go to its engine."""
    demands: dict[str, float] = {}
    for resource, seconds in cost.resource_s.items():
        kind = resource.split(":", 1)[0]
        key = f"chip{chip}:{engine}" if kind in ("compute", "lut") else f"chip{chip}:{resource}"
        demands[key] = demands.get(key, 0.0) + seconds
    return demands


def tasks_from_trace(trace: Trace, costs: list[OpCost], micro_batches: int = 1) -> list[Task]:
    """Expand repeats and micro-batches; each op depends on the one before it in its micro-batch."""
    tasks: list[Task] = []
    for mb in range(micro_batches):
        previous: int | None = None
        for top, cost in zip(trace.ops, costs, strict=True):
            chip = top.chips[0]
            comm = isinstance(top.op, Collective)
            engine = None if comm else top.op.engine
            for _ in range(top.repeat):
                task = Task(len(tasks), top.op.label, chip, top.chips, "comm" if comm else "compute", engine,
                            demands_of(cost, chip, engine), cost.overhead_s,
                            () if previous is None else (previous,), cost.bound, mb)
                tasks.append(task)
                previous = task.id
    return tasks

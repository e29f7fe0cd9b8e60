"""Running tasks on simpy: engines as queues, memory and links processor-shared, streams in issue order.

Each chip has a FIFO queue per compute engine (matrix, vector); its memory levels and
links are processor-shared (perfsim.engine.fluid). A task starts when its dependencies
and the task issued before it on the same chip and stream are done, then holds its
engine, pays its fixed overhead, and runs as a flow. No global state: the environment
and every counter belong to one run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import simpy

from perfsim.engine.fluid import FluidPool
from perfsim.engine.tasks import Task


@dataclass(frozen=True)
class Schedule:
    """When each task ran: `start_s[i]`, `end_s[i]` for task i."""

    tasks: list[Task]
    start_s: list[float]
    end_s: list[float]

    @property
    def makespan_s(self) -> float:
        return max(self.end_s, default=0.0)

    def timeline(self) -> pd.DataFrame:
        """One row per task and chip it stands for: op, chip, stream, resource, start_s, end_s, bound."""
        rows = [{"task": t.id, "op": t.name, "chip": chip, "stream": t.stream,
                 "resource": t.engine or next(iter(t.demands), "").split(":", 1)[-1],
                 "micro_batch": t.micro_batch, "start_s": self.start_s[t.id], "end_s": self.end_s[t.id],
                 "bound": t.bound} for t in self.tasks for chip in t.chips]
        return pd.DataFrame(rows, columns=["task", "op", "chip", "stream", "resource", "micro_batch", "start_s",
                                           "end_s", "bound"])

    def demand_s(self) -> dict[str, float]:
        """Total demand seconds on each resource over all tasks."""
        busy: dict[str, float] = defaultdict(float)
        for t in self.tasks:
            for resource, seconds in t.demands.items():
                busy[resource] += seconds
        return dict(sorted(busy.items()))

    def utilisation(self) -> dict[str, float]:
        """Fraction of the makespan each resource's capacity is used: Σ demand seconds / makespan."""
        span = self.makespan_s
        return {r: s / span for r, s in self.demand_s().items()} if span else {}

    def busiest_resource_s(self) -> float:
        """The largest total demand on one resource: no schedule can finish sooner."""
        return max(self.demand_s().values(), default=0.0)

    def critical_path(self) -> list[int]:
        """Task ids from the first to the last-finishing task, each the predecessor that ended last."""
        if not self.tasks:
            return []
        predecessors = _predecessors(self.tasks)
        current = max(range(len(self.tasks)), key=lambda i: self.end_s[i])
        path = [current]
        while predecessors[current]:
            current = max(predecessors[current], key=lambda i: self.end_s[i])
            path.append(current)
        return path[::-1]


def _predecessors(tasks: list[Task]) -> list[tuple[int, ...]]:
    """Dependencies plus the previous task on the same chip and stream."""
    last: dict[tuple[int, str], int] = {}
    result = []
    for t in tasks:
        key = (t.chip, t.stream)
        previous = (last[key],) if key in last and last[key] not in t.deps else ()
        result.append(t.deps + previous)
        last[key] = t.id
    return result


def simulate(tasks: list[Task]) -> Schedule:
    """Run `tasks` (ids 0..n−1 in issue order) to completion; the result is deterministic."""
    env = simpy.Environment()
    pool = FluidPool(env)
    engines: dict[str, simpy.Resource] = {}
    finished = [env.event() for _ in tasks]
    start = [0.0] * len(tasks)
    end = [0.0] * len(tasks)

    def run(task: Task, waits: tuple[int, ...]):
        if waits:
            yield simpy.AllOf(env, [finished[i] for i in waits])
        queue = None
        if task.engine is not None:
            queue = engines.setdefault(f"chip{task.chip}:{task.engine}", simpy.Resource(env, capacity=1))
            request = queue.request()
            yield request
        start[task.id] = env.now
        if task.overhead_s:
            yield env.timeout(task.overhead_s)
        yield pool.run(task.demands)
        if queue is not None:
            queue.release(request)
        end[task.id] = env.now
        finished[task.id].succeed()

    for task, waits in zip(tasks, _predecessors(tasks), strict=True):
        env.process(run(task, waits))
    env.run()
    return Schedule(tasks, start, end)

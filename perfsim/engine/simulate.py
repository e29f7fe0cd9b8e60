"""Running tasks on simpy: engines as queues, memory and links processor-shared, streams in issue order.

Each chip has a FIFO queue per compute engine (matrix, vector; pim on a pim chip); its memory levels and
links are processor-shared (perfsim.engine.fluid). A task starts when its dependencies
and the task issued before it on the same chip and stream are done, then holds its
engine, pays its fixed overhead, and runs as a flow. No global state: the environment
and every counter belong to one run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

from perfsim.engine.fluid import FluidPool
from perfsim.engine.tasks import Task
from perfsim.errors import PerfsimError

if TYPE_CHECKING:
    import pandas as pd

MAX_TIMELINE_ROWS = 2_000_000
TIMELINE_COLUMNS = ["task", "op", "chip", "stream", "resource", "micro_batch", "start_s", "end_s", "bound"]


@dataclass(frozen=True)
class Schedule:
    """When each task ran: its first run from `start_s[i]` to `end_s[i]`, its k-th run `period_s[i]`·k later.

    `path` is the critical path, first to last, as (task id, how many of its runs lie on it).
    """

    tasks: list[Task]
    start_s: list[float]
    end_s: list[float]
    period_s: list[float]
    makespan_s: float
    path: list[tuple[int, int]]

    def timeline(self) -> pd.DataFrame:
        """One row per op execution and chip it stands for, in time order (layer by layer):
        task, op, chip, stream, resource, micro_batch, start_s, end_s, bound. Raise PerfsimError beyond
        MAX_TIMELINE_ROWS rows."""
        rows = sum(t.repeat * len(t.chips) for t in self.tasks)
        if rows > MAX_TIMELINE_ROWS:
            raise PerfsimError(f"the timeline has {rows:,} rows (op executions × chips), more than "
                               f"{MAX_TIMELINE_ROWS:,} can be exported; drop --timeline or shorten the step")
        columns: dict[str, list] = {name: [] for name in TIMELINE_COLUMNS}
        for t in self.tasks:
            resource = t.engine or next(iter(t.demands), "").split(":", 1)[-1]
            for run in range(t.repeat):
                shift = run * self.period_s[t.id]
                for chip in t.chips:
                    for name, value in zip(TIMELINE_COLUMNS, (t.id, t.name, chip, t.stream, resource, t.micro_batch,
                                                              self.start_s[t.id] + shift, self.end_s[t.id] + shift,
                                                              t.bound), strict=True):
                        columns[name].append(value)
        import pandas as pd  # only when a timeline is asked for: a step estimate need not import pandas

        frame = pd.DataFrame(columns, columns=TIMELINE_COLUMNS)
        return frame.sort_values(["start_s", "task", "chip"], kind="stable", ignore_index=True)

    def demand_s(self) -> dict[str, float]:
        """Total demand seconds on each resource over all tasks."""
        busy: dict[str, float] = defaultdict(float)
        for t in self.tasks:
            for resource, seconds in t.demands.items():
                busy[resource] += seconds * t.repeat
        return dict(sorted(busy.items()))

    def utilisation(self) -> dict[str, float]:
        """Fraction of the makespan each resource's capacity is used: Σ demand seconds / makespan."""
        span = self.makespan_s
        return {r: s / span for r, s in self.demand_s().items()} if span else {}

    def busiest_resource_s(self) -> float:
        """The largest total demand on one resource: no schedule can finish sooner."""
        return max(self.demand_s().values(), default=0.0)

    def critical_path(self) -> list[int]:
        """Task ids on the critical path, from the first to the last-finishing task."""
        return [i for i, runs in self.path if runs]

    def critical_path_s(self) -> dict[str, float]:
        """Seconds each op name contributes to the critical path."""
        seconds: dict[str, float] = defaultdict(float)
        for i, runs in self.path:
            seconds[self.tasks[i].name] += runs * (self.end_s[i] - self.start_s[i])
        return dict(seconds)


def predecessors(tasks: list[Task]) -> list[tuple[int, ...]]:
    """Dependencies plus the previous task on the same chip and stream."""
    last: dict[tuple[int, str], int] = {}
    result = []
    for t in tasks:
        key = (t.chip, t.stream)
        previous = (last[key],) if key in last and last[key] not in t.deps else ()
        result.append(t.deps + previous)
        last[key] = t.id
    return result


def backtrack(end: list[float], waits: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """From the last-finishing task back through the predecessor that ended last."""
    if not end:
        return []
    current = max(range(len(end)), key=lambda i: end[i])
    path = [(current, 1)]
    while waits[current]:
        current = max(waits[current], key=lambda i: end[i])
        path.append((current, 1))
    return path[::-1]


def simulate(tasks: list[Task]) -> Schedule:
    """Run `tasks` (ids 0..n−1 in issue order, one run each) to completion; the result is deterministic.

    Raise ValueError if a task stands for several runs (expand it first).
    """
    if any(t.repeat != 1 for t in tasks):
        raise ValueError("simulate runs tasks of one run each")
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

    waits = predecessors(tasks)
    for task, before in zip(tasks, waits, strict=True):
        env.process(run(task, before))
    env.run()
    return Schedule(tasks, start, end, [0.0] * len(tasks), max(end, default=0.0), backtrack(end, waits))

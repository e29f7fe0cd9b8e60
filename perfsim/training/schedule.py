"""Training schedules on the discrete-event engine (perfsim.engine.simulate): pipelines and comm overlap.

Pipeline (`pipeline`): p devices (stages), m micro-batches, v model chunks per device (v = 1: 1F1B, PipeDream-
Flush; v > 1: Megatron-LM's interleaved 1F1B, Narayanan et al. 2021). Every chunk's forward F and backward B is
one task on its device's compute stream, issued in the schedule's order; a forward waits for the previous chunk's
forward of its micro-batch (and the send between them, on the sender's p2p stream), a backward for the next
chunk's backward (the last chunk's for its own forward). Device d's order: `warmup` forwards, then one forward
and one backward in turn, then the remaining backwards, where warmup = min(p − d − 1, m) for v = 1 and
min(2(p − d − 1) + (v − 1)p, m·v) interleaved; interleaved forward k runs chunk (k ÷ p) mod v of micro-batch
(k ÷ pv)·p + k mod p (backward: chunk v − 1 − that). With equal stages and free sends the 1F1B makespan is
(m + p − 1)(t_f + t_b): a bubble of (p − 1)/(m + p − 1) of it; interleaved, (p − 1)/v chunk-slots of bubble.

Overlap (`overlapped`): one device's layers run in order on its compute stream; collectives (a bucket's
gradient all-reduce once the layers that fill it are done, ZeRO-3's parameter all-gather before a layer and
its gradient reduce-scatter after it) run in issue order on its comm stream; a prefetched all-gather waits for
the compute `prefetch` layers back (FSDP's limit_all_gathers). While a collective runs, the layer beside it
progresses at its time alone over its time under the collective's interference (perfsim.training.interference:
SMs held by the channels' CTAs, HBM bandwidth taken by the traffic); the collective itself keeps its pace. The
exposed communication is what remains after the last compute task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perfsim.engine.simulate import Schedule, backtrack, predecessors, simulate
from perfsim.engine.tasks import Task
from perfsim.errors import PerfsimError
from perfsim.training.interference import NONE, Interference


@dataclass
class _Builder:
    tasks: list[Task] = field(default_factory=list)

    def add(self, name: str, chip: int, stream: str, seconds: float, deps: tuple[int, ...], bound: str,
            micro_batch: int = 0) -> int:
        # a stream runs one task at a time, so nothing is shared: each task holds its stream for its seconds
        self.tasks.append(Task(len(self.tasks), name, chip, (chip,), stream, stream,  # type: ignore[arg-type]
                               {}, max(seconds, 0.0), deps, bound, micro_batch))
        return len(self.tasks) - 1


def device_order(p: int, d: int, m: int, v: int) -> list[tuple[str, int, int]]:
    """Device d's (pass, chunk, micro-batch) sequence under 1F1B (v = 1) or interleaved 1F1B (module doc)."""
    total = m * v

    def slot(k: int, backward: bool) -> tuple[int, int]:
        chunk = (k // p) % v
        mb = (k // (p * v)) * p + k % p if v > 1 else k
        return (v - 1 - chunk if backward else chunk), mb

    warmup = min(p - d - 1, m) if v == 1 else min(2 * (p - d - 1) + (v - 1) * p, total)
    order = [("F", *slot(k, False)) for k in range(warmup)]
    for i in range(total - warmup):
        order += [("F", *slot(warmup + i, False)), ("B", *slot(i, True))]
    order += [("B", *slot(k, True)) for k in range(total - warmup, total)]
    return order


@dataclass(frozen=True)
class PipelineRun:
    """The pipeline's schedule, its makespan, and when each device's last backward ends (seconds)."""

    schedule: Schedule
    last_backward_end_s: list[float]

    @property
    def makespan_s(self) -> float:
        return self.schedule.makespan_s


def pipeline(forward_s: list[float], backward_s: list[float], send_s: float, micro_batches: int,
             virtual: int = 1) -> PipelineRun:
    """m micro-batches through p = len(forward_s) stages, each stage's times per micro-batch (all its chunks).

    Raise PerfsimError if interleaving is asked with m not a multiple of p (Megatron-LM's requirement)."""
    p, m, v = len(forward_s), micro_batches, virtual
    if v > 1 and m % p:
        raise PerfsimError(f"the interleaved schedule needs micro-batches ({m}) to be a multiple of pp ({p})")
    b = _Builder()
    ids: dict[tuple[str, int, int, int], int] = {}  # (pass, chunk, device, micro-batch) → task id
    sends: dict[tuple[str, int, int, int], int] = {}
    orders = [device_order(p, d, m, v) for d in range(p)]
    for d, order in enumerate(orders):  # ids first: a task may wait for one issued on a later device
        for kind, chunk, mb in order:
            ids[(kind, chunk, d, mb)] = -1
    # issue: each device's tasks in its order; dependencies filled in a second pass
    pending: list[tuple[int, str, int, int, int]] = []
    for d, order in enumerate(orders):
        for kind, chunk, mb in order:
            seconds = (forward_s[d] if kind == "F" else backward_s[d]) / v
            ids[(kind, chunk, d, mb)] = b.add(f"{kind}{mb}" + (f".{chunk}" if v > 1 else ""), d, "compute",
                                              seconds, (), "compute", mb)
            last = (kind == "F" and (chunk, d) == (v - 1, p - 1)) or (kind == "B" and (chunk, d) == (0, 0))
            if send_s > 0 and not last:
                sends[(kind, chunk, d, mb)] = b.add("send" if kind == "F" else "send.grad", d, "p2p", send_s,
                                                    (ids[(kind, chunk, d, mb)],), "link", mb)
            pending.append((ids[(kind, chunk, d, mb)], kind, chunk, d, mb))
    tasks = b.tasks
    for task_id, kind, chunk, d, mb in pending:
        if kind == "F":
            before = (chunk, d - 1) if d > 0 else (chunk - 1, p - 1) if chunk > 0 else None
        else:
            before = (chunk, d + 1) if d < p - 1 else (chunk + 1, 0) if chunk < v - 1 else None
        if before is None:
            deps = () if kind == "F" else (ids[("F", chunk, d, mb)],)
        else:
            key = (kind, before[0], before[1], mb)
            deps = (sends.get(key, ids[key]),)
        tasks[task_id] = Task(**{**tasks[task_id].__dict__, "deps": deps})
    schedule = simulate(tasks)
    ends = [max(schedule.end_s[ids[("B", c, d, mb)]] for c in range(v) for mb in range(m)) for d in range(p)]
    return PipelineRun(schedule, ends)


@dataclass(frozen=True)
class Layer:
    """One layer's compute seconds, and the collectives around it: an all-gather before (ZeRO-3), a reduce after
    it (ZeRO-3's reduce-scatter), and a bucket collective issued after it (a DP bucket it closes); each collective's
    interference, and `slowed` (the layer's seconds under an interference; None: unaffected)."""

    name: str
    compute_s: float
    gather_s: float = 0.0
    reduce_s: float = 0.0
    bucket_s: float = 0.0
    gather_hit: Interference = NONE
    reduce_hit: Interference = NONE
    bucket_hit: Interference = NONE
    slowed: Callable[[Interference], float] | None = None


@dataclass(frozen=True)
class Overlap:
    """A pass with its collectives: the schedule, the compute seconds alone, and what the comm left exposed."""

    schedule: Schedule
    compute_s: float

    @property
    def span_s(self) -> float:
        return self.schedule.makespan_s

    @property
    def exposed_s(self) -> float:
        return max(self.span_s - self.compute_s, 0.0)  # the span holds the compute: below 0 is float residue


def _run_two_streams(tasks: list[Task], rate: Callable[[int, int], float]) -> Schedule:
    """Run `tasks` on one chip's compute and comm streams in issue order; the compute task i progresses at
    rate(i, j) of its seconds per second while comm task j runs (1 when none runs)."""
    waits = predecessors(tasks)
    queues = {stream: [t.id for t in tasks if t.stream == stream][::-1] for stream in ("comm", "compute")}
    start, end = [0.0] * len(tasks), [0.0] * len(tasks)
    done = [False] * len(tasks)
    running: dict[str, tuple[int, float]] = {}  # stream → (task id, seconds left at its own pace)
    now = 0.0
    while True:
        for stream, queue in queues.items():
            if stream not in running and queue and all(done[w] for w in waits[queue[-1]]):
                i = queue.pop()
                start[i] = now
                running[stream] = (i, tasks[i].overhead_s)
        if not running:
            break
        comm = running["comm"][0] if "comm" in running else None
        pace = {s: (rate(i, comm) if s == "compute" and comm is not None else 1.0) for s, (i, _) in running.items()}
        step, first = min((left / pace[s], s) for s, (_, left) in running.items())
        for stream, (i, left) in list(running.items()):
            left = 0.0 if stream == first else left - step * pace[stream]
            if left <= 0.0:
                del running[stream]
                end[i], done[i] = now + step, True
            else:
                running[stream] = (i, left)
        now += step
    if not all(done):
        raise PerfsimError("the overlap schedule has a task waiting for one issued after it")  # a builder bug
    return Schedule(tasks, start, end, [0.0] * len(tasks), max(end, default=0.0), backtrack(end, waits))


def overlapped(layers: list[Layer], prefetch: int = 2, chip: int = 0) -> Overlap:
    """`layers` in order on one chip's compute stream with their collectives on its comm stream (module doc)."""
    b = _Builder()
    compute: list[int] = []
    gathers: dict[int, int] = {}
    hits: dict[int, Interference] = {}
    layer_of: dict[int, Layer] = {}

    def comm(name: str, seconds: float, deps: tuple[int, ...], hit: Interference) -> int:
        hits[task := b.add(name, chip, "comm", seconds, deps, "link")] = hit
        return task

    def gather(j: int) -> None:  # issued `prefetch` layers ahead, each waiting for the compute prefetch layers back
        if j < len(layers) and j not in gathers and layers[j].gather_s > 0:
            wait = (compute[j - prefetch],) if j >= prefetch else ()
            gathers[j] = comm(f"{layers[j].name}.all_gather", layers[j].gather_s, wait, layers[j].gather_hit)

    for i, layer in enumerate(layers):
        for j in range(i, i + prefetch):
            gather(j)
        deps = tuple(compute[-1:]) + ((gathers[i],) if i in gathers else ())
        compute.append(b.add(layer.name, chip, "compute", layer.compute_s, deps, "compute"))
        layer_of[compute[-1]] = layer
        gather(i + prefetch)  # the next prefetch goes out before this layer's reduce-scatter, as FSDP issues it
        if layer.reduce_s > 0:
            comm(f"{layer.name}.reduce_scatter", layer.reduce_s, (compute[-1],), layer.reduce_hit)
        if layer.bucket_s > 0:
            comm(f"{layer.name}.bucket", layer.bucket_s, (compute[-1],), layer.bucket_hit)

    def rate(task: int, beside: int) -> float:
        layer = layer_of[task]
        slowed = layer.slowed(hits[beside]) if layer.slowed else layer.compute_s
        return layer.compute_s / slowed if slowed > 0 else 1.0

    return Overlap(_run_two_streams(b.tasks, rate), sum(layer.compute_s for layer in layers))

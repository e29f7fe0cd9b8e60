"""One offloaded iteration on the discrete-event engine: weight streaming, GPU GEMMs and CPU attention overlapped.

Three actors: the GPU (chip 0, its ops in issue order), the host CPU (chip 1) and the host link (its DMA
queues: weights in layer order, activations beside them). The batch is split into `groups` token groups (MoE-
Lens's VSLPipe, α and β); per layer the GPU runs, for each group, the ops before attention, then for each group
the ops after it, so one group's CPU attention overlaps the other group's GPU work. The GPU holds
`weight_buffers` layers of streamed weights: layer l's transfer starts once the GPU has finished layer
l − weight_buffers. Each op's seconds per resource come from the cost model (perfsim.cost) of the chip it runs
on; host DRAM is one processor-shared resource that the link's weight reads and the CPU attention's KV reads
share (MoE-Lens's B_Mem = B_KV + B_IO), the two sockets pooled (each socket attends over half the sequences).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost import Cache, cost
from perfsim.engine.blocks import demands_of
from perfsim.engine.simulate import Schedule, simulate
from perfsim.engine.tasks import Task
from perfsim.models.scenario import Resolved, resolve
from perfsim.offload.bound import gpu_dtype
from perfsim.offload.iteration import Iteration, iteration
from perfsim.offload.placement import Host, Offload
from perfsim.ops import Attention, OpBase

GPU, HOST, LINK = 0, 1, 2


@dataclass(frozen=True)
class Simulated:
    """The schedule of one iteration and what it yields."""

    schedule: Schedule
    tokens: int
    names: dict[str, str]  # engine resource key → binding-resource name

    @property
    def iteration_s(self) -> float:
        return self.schedule.makespan_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.iteration_s

    def utilisation(self) -> dict[str, float]:
        """Busy fraction of each binding resource over the iteration (the busiest key of each name)."""
        used: dict[str, float] = {}
        for key, share in self.schedule.utilisation().items():
            name = self.names[key]
            used[name] = max(used.get(name, 0.0), share)
        return used

    @property
    def bound(self) -> str:
        """The resource busiest over the simulated iteration."""
        used = self.utilisation()
        return max(used, key=lambda k: used[k])


def simulate_iteration(r: Resolved, offload: Offload, host: Host, cache: Cache = "cold") -> Simulated:
    """Simulate one iteration of `r` (resolved as one group) split into `offload.groups` groups (each Layer of the
    iteration is one group's ops and crossings; the weights stream once for all groups)."""
    groups = min(offload.groups, r.scenario.batch)
    rg = resolve(r.scenario.model_copy(update={"micro_batches": groups}), r.system or r.chip) if groups > 1 else r
    it = iteration(rg, offload)
    builder = _Builder(rg, host, cache)
    builder.build(it, groups, offload.weight_buffers)
    return Simulated(simulate(builder.tasks), it.tokens, builder.names)


class _Builder:
    """Tasks in issue order, with the resource names their keys stand for."""

    def __init__(self, r: Resolved, host: Host, cache: Cache) -> None:
        self.r, self.host, self.cache = r, host, cache
        self.tasks: list[Task] = []
        dram = host.cpu.main.name
        link = f"link:{host.link.name}"
        self.dram_key = f"chip{HOST}:memory:{dram}"
        self.names = {f"{link}:h2d": link, f"{link}:d2h": link, self.dram_key: f"memory:{dram}",
                      f"chip{HOST}:matrix": "compute:fp32", f"chip{HOST}:vector": "compute:fp32",
                      f"chip{GPU}:matrix": f"compute:{gpu_dtype(r)}", f"chip{GPU}:vector": f"compute:{gpu_dtype(r)}"}
        self.link = link

    def add(self, name: str, chip: int, stream: str, demands: dict[str, float], deps: tuple[int, ...],
            overhead_s: float = 0.0, group: int = 0) -> int:
        for key in demands:
            self.names.setdefault(key, key.split(":", 1)[1])
        bound = self.names[max(demands, key=lambda k: demands[k])] if demands else "overhead"
        task = Task(len(self.tasks), name, chip, (chip,), stream, None, demands, overhead_s,  # type: ignore[arg-type]
                    tuple(d for d in deps if d >= 0), bound, group)
        self.tasks.append(task)
        return task.id

    def gpu(self, op: OpBase, deps: tuple[int, ...], group: int) -> int:
        c = cost(op, self.r.chip, self.cache)
        return self.add(op.label, GPU, "compute", demands_of(c, GPU, op.engine), deps, c.overhead_s, group)

    def cpu(self, op: Attention, deps: tuple[int, ...], group: int) -> int:
        """The attention over half the sequences on each socket, in parallel: one socket's time."""
        share = op.model_copy(update={"batch": -(-op.batch // self.host.sockets)})
        c = cost(share, self.host.cpu, self.cache)
        return self.add("cpu_attention", HOST, "compute", demands_of(c, HOST, op.engine), deps, c.overhead_s, group)

    def transfer(self, name: str, nbytes: float, direction: str, stream: str, deps: tuple[int, ...],
                 group: int = 0) -> int:
        """A DMA of `nbytes` over the host link, reading (h2d) or writing (d2h) host DRAM."""
        demands = {f"{self.link}:{direction}": nbytes / self.host.link.bandwidth_per_direction,
                   self.dram_key: nbytes / self.host.dram_bandwidth}
        return self.add(name, LINK, stream, demands, deps, group=group)

    def build(self, it: Iteration, groups: int, buffers: int) -> None:
        """Issue the iteration's tasks (module doc)."""
        outside_in = self.transfer("head_weights", it.outside_streamed_bytes, "h2d", "p2p", ()) \
            if it.outside_streamed_bytes else -1
        first = [op for op in it.outside if op.label == "embedding"]
        last_gpu = [self.gpu(op, (), g) for op in first for g in range(groups)][-1:] or [-1]
        layer_done: list[int] = []  # the last GPU task of each layer
        layer = 0
        for spec in it.layers:
            for _ in range(spec.repeat):
                freed = layer_done[layer - buffers] if layer >= buffers else -1
                weights = self.transfer(f"weights_l{layer}", spec.streamed_bytes, "h2d", "p2p", (freed,))
                ready = []
                for g in range(groups):
                    t = last_gpu[-1]
                    for op in spec.gpu_before:
                        t = self.gpu(op, (weights, t), g)
                    if spec.cpu:
                        out = self.transfer("attention_inputs", spec.d2h_bytes, "d2h", "comm", (t,), g)
                        for op in spec.cpu:
                            out = self.cpu(op, (out,), g)  # type: ignore[arg-type]
                        t = self.transfer("attention_outputs", spec.h2d_bytes - spec.streamed_bytes, "h2d", "comm",
                                          (out,), g)
                    elif spec.d2h_bytes:
                        self.transfer("kv_writeback", spec.d2h_bytes, "d2h", "comm", (t,), g)
                    ready.append(t)
                    last_gpu = [t]
                for g in range(groups):
                    t = ready[g]
                    for op in spec.gpu_after:
                        t = self.gpu(op, (weights, t), g)
                    last_gpu = [t]
                layer_done.append(last_gpu[-1])
                layer += 1
        for op in it.outside:
            if op.label != "embedding":
                for g in range(groups):
                    self.gpu(op, (last_gpu[-1], outside_in), g)

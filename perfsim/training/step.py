"""A training step: micro-batches through the pipeline, the gradient sync, the optimizer update.

step_s = max over stages d of (end of d's last backward in the pipeline schedule + the DP gradient sync that
its last backward left exposed) + the optimizer update + (ZeRO 1/2) the all-gather of the updated weights.
- Stage times per micro-batch come from the costed ops (perfsim.training.costing); with ZeRO-3 from the
  layer-by-layer overlap of compute and the weight all-gathers / gradient reduce-scatters
  (perfsim.training.schedule.overlapped), a layer slowed while a collective's channels and traffic share its chip
  (perfsim.training.interference).
- The pipeline runs on the discrete-event engine (perfsim.training.schedule.pipeline); one stage runs its m
  micro-batches back to back.
- ZeRO 0-2: the gradients of the last micro-batch's backward fill `bucket_mb` buckets in backward order; each
  bucket's collective starts when its last layer is done and runs under the following layers' backward.
Model FLOPs are the forward and backward ops' FLOPs (as counted by the IR: causal attention counts the pairs it
computes) over all chips; hardware FLOPs add the recomputed forward. MFU and HFU divide them by step_s × devices
× the chip's datasheet matrix peak in the GEMM precision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perfsim.cost import cost
from perfsim.cost.roofline import promotions
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.models.params import embedding_params, head_params, layer_params, lm_head_matrix
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.spec import ModelSpec
from perfsim.specfile import validate
from perfsim.training.comm import GRAD_BYTES, PARAM_BYTES, collective_s, ring_bytes_sent
from perfsim.training.config import TrainConfig
from perfsim.training.costing import FP8, Segment, StageWork, stage_work
from perfsim.training.interference import Interference, collective_channels, slowed_s
from perfsim.training.layout import Layout, StageParams, hardware_for, layout, local_params, stage_params
from perfsim.training.memory import TrainingMemory, check_fits, training_memory
from perfsim.training.optimizer import OptimizerStep
from perfsim.training.schedule import Layer, Overlap, PipelineRun, overlapped, pipeline


def datasheet_peak(chip: Device, dtype: str) -> float:
    """The chip's datasheet FLOP/s for matrix work in `dtype` (its promotions if no unit runs it natively)."""
    for current in promotions(dtype):
        peaks = [p for u in chip.compute if u.role == "matrix" and (p := u.peak_flops(current, chip.clock.peak))]
        if peaks:
            return max(peaks)
    raise PerfsimError(f"{chip.name} has no matrix unit for {dtype}")


def _check_fp8(chip: Device) -> None:
    if not any(u.peak_flops(FP8, chip.clock.peak) for u in chip.compute if u.role == "matrix"):
        raise PerfsimError(f"--precision fp8: {chip.name} has no fp8 matrix units")


@dataclass(frozen=True)
class TrainingEstimate:
    """One training step of a transformer on its chips (module doc)."""

    config: TrainConfig
    model: ModelSpec
    chip: Device
    system: System | None
    layout: Layout
    stages: list[StageWork]
    pipeline_run: PipelineRun | None
    dp_overlap: list[Overlap]
    optimizer_s: float
    param_gather_s: float
    memory: TrainingMemory

    @property
    def micro_batch_s(self) -> list[float]:
        return [s.forward_s + s.backward_s for s in self.stages]

    @property
    def pipeline_s(self) -> float:
        m = self.layout.micro_batches
        return self.pipeline_run.makespan_s if self.pipeline_run else m * self.micro_batch_s[0]

    @property
    def backward_ends_s(self) -> list[float]:
        return self.pipeline_run.last_backward_end_s if self.pipeline_run else [self.pipeline_s]

    @property
    def sync_end_s(self) -> float:
        exposed = [o.exposed_s for o in self.dp_overlap] or [0.0] * len(self.stages)
        return max(end + e for end, e in zip(self.backward_ends_s, exposed, strict=True))

    @property
    def step_s(self) -> float:
        return self.sync_end_s + self.optimizer_s + self.param_gather_s

    @property
    def critical_stage(self) -> int:
        return max(range(len(self.stages)), key=lambda s: self.micro_batch_s[s])

    @property
    def tokens_per_step(self) -> int:
        return self.layout.global_batch * self.config.seq_len

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    def step_flops(self, phases: tuple[str, ...]) -> float:
        """FLOPs of the step over all chips in `phases` (forward, backward, recompute)."""
        lay = self.layout
        per_chip = sum(s.flops(p) for s in self.stages for p in phases)
        return per_chip * lay.tp * lay.dp * lay.micro_batches

    @property
    def peak_flops(self) -> float:
        return datasheet_peak(self.chip, FP8 if self.config.precision == "fp8" else "bf16")

    @property
    def mfu(self) -> float:
        return self.step_flops(("forward", "backward")) / (self.step_s * self.layout.devices * self.peak_flops)

    @property
    def hfu(self) -> float:
        flops = self.step_flops(("forward", "backward", "recompute"))
        return flops / (self.step_s * self.layout.devices * self.peak_flops)

    def time_s(self) -> dict[str, float]:
        """Seconds of the step on its critical stage: passes, pipeline bubble, exposed DP sync, update."""
        crit, m = self.critical_stage, self.layout.micro_batches
        work = self.stages[crit]
        busy = m * self.micro_batch_s[crit]  # exposed ZeRO-3 comm included
        return {"forward": m * work.total("forward"), "backward": m * work.total("backward"),
                "recompute": m * work.total("recompute"), "pipeline_bubble": max(self.pipeline_s - busy, 0.0),
                "dp_exposed": self.sync_end_s - self.pipeline_s + m * sum(work.exposed_s),
                "optimizer": self.optimizer_s,
                "param_all_gather": self.param_gather_s}

    def by_resource(self) -> dict[str, float]:
        """Seconds of the critical stage's ops by binding resource over the step, plus the pipeline bubble, the
        exposed DP sync and the update."""
        seconds: dict[str, float] = defaultdict(float)
        m = self.layout.micro_batches
        for segment in self.stages[self.critical_stage].segments:
            for _, _, c in segment.rows:
                seconds[c.bound] += c.time_s * segment.count * m
        times = self.time_s()
        for key, label in (("pipeline_bubble", "pipeline_bubble"), ("dp_exposed", "dp_sync"),
                           ("optimizer", "optimizer"), ("param_all_gather", "dp_sync")):
            if times[key] > 0:
                seconds[label] += times[key]
        return dict(seconds)

    @property
    def bound(self) -> str:
        return max(self.by_resource().items(), key=lambda item: item[1])[0]

    def breakdown(self) -> list[dict[str, Any]]:
        """Per pass and op name on the critical stage: seconds, FLOPs and bytes over the step, and its bound."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        m = self.layout.micro_batches
        for segment in self.stages[self.critical_stage].segments:
            for phase, name, c in segment.rows:
                row = rows.setdefault((phase, name), {"pass": phase, "op": name, "time_s": 0.0, "flops": 0.0,
                                                      "bytes": 0.0, "count": 0, "bound": c.bound})
                row["time_s"] += c.time_s * segment.count * m
                row["flops"] += c.flops * segment.count * m
                row["bytes"] += c.bytes * segment.count * m
                row["count"] += segment.count * m
        return list(rows.values())

    def summary(self) -> dict[str, Any]:
        c, lay = self.config, self.layout
        tokens_per_s = self.tokens_per_s
        return {
            "model": self.model.name, "hardware": (self.system or self.chip).name, "devices": lay.devices,
            "parallelism": {"tp": lay.tp, "pp": lay.pp, "dp": lay.dp, "ep": lay.ep, "zero": lay.zero},
            "micro_batch": lay.micro_batch, "global_batch": lay.global_batch, "micro_batches": lay.micro_batches,
            "seq_len": c.seq_len, "recompute": c.recompute, "optimizer": c.optimizer, "precision": c.precision,
            "schedule": c.schedule if lay.pp > 1 else None,
            "step_s": self.step_s, "tokens_per_step": self.tokens_per_step, "tokens_per_s": tokens_per_s,
            "tokens_per_s_per_device": tokens_per_s / lay.devices, "mfu": self.mfu, "hfu": self.hfu,
            "model_flops_per_step": self.step_flops(("forward", "backward")),
            "time_to_train_s": c.tokens / tokens_per_s if c.tokens else None,
            "time_s": self.time_s(), "memory_bytes_per_device": self.memory.total_bytes,
            "memory": self.memory.as_dict(), "bound": self.bound, "breakdown": self.breakdown(),
        }


def _hit(kind: str, params: StageParams, seconds: float, lay: Layout, chip: Device, system: System | None,
         bytes_per_param: float = PARAM_BYTES) -> Interference:
    """What a `kind` collective of these parameters' tensors takes from its chip while it runs."""
    if seconds <= 0 or system is None:
        return Interference()
    crosses = isinstance(system.member, System) and lay.tp * lay.dp > system.member.chips
    sent = (ring_bytes_sent(kind, params.dense * bytes_per_param, lay.dp)
            + ring_bytes_sent(kind, params.experts * bytes_per_param, lay.expert_dp))
    return Interference.of(kind, sent, seconds, collective_channels(chip, system, crosses))


def _slowed(segment: Segment, phases: tuple[str, ...], chip: Device) -> Callable[[Interference], float]:
    """One layer of `segment`'s seconds in `phases` under an interference."""
    return lambda hit: sum(slowed_s(c, chip, hit) for phase, _, c in segment.rows if phase in phases)


def _dp_overlap(work: StageWork, params: list[StageParams], lay: Layout, chip: Device, system: System | None,
                bucket_bytes: float, grad_bytes: float) -> Overlap:
    """The last micro-batch's backward of one stage with its bucketed gradient collectives (module doc)."""
    kind = "all_reduce" if lay.zero == 0 else "reduce_scatter"
    layers: list[Layer] = []
    pending = StageParams(0.0, 0.0)
    expanded = [(s, p, k) for s, p in zip(work.segments, params, strict=True) for k in range(s.count)]
    for i, (segment, share, k) in enumerate(reversed(expanded)):
        pending = StageParams(pending.dense + share.dense, pending.experts + share.experts)
        closes = pending.total * grad_bytes >= bucket_bytes or i == len(expanded) - 1
        bucket = collective_s(kind, pending, lay, system, grad_bytes) if closes else 0.0
        name = segment.name if segment.layer is None else f"layer {segment.layer + k}"
        layers.append(Layer(f"{name}.grad", segment.backward_s, bucket_s=bucket,
                            bucket_hit=_hit(kind, pending, bucket, lay, chip, system, grad_bytes),
                            slowed=_slowed(segment, ("backward", "recompute"), chip)))
        if closes:
            pending = StageParams(0.0, 0.0)
    return overlapped(layers)


def _zero3_times(work: StageWork, params: list[StageParams], lay: Layout, chip: Device, system: System | None,
                 grad_bytes: float) -> tuple[float, float]:
    """(forward, backward) seconds of one micro-batch on a stage with FSDP's gathers and reduce-scatters."""
    expanded = [(s, p) for s, p in zip(work.segments, params, strict=True) for _ in range(s.count)]
    comm: dict[tuple[int, str], tuple[float, Interference]] = {}
    for s, p in zip(work.segments, params, strict=True):
        for kind, size in (("all_gather", PARAM_BYTES), ("reduce_scatter", grad_bytes)):
            seconds = collective_s(kind, p, lay, system, size)
            comm[(id(s), kind)] = (seconds, _hit(kind, p, seconds, lay, chip, system, size))

    def layer(s: Segment, phases: tuple[str, ...], reduce: bool) -> Layer:
        (gather_s, gather_hit), (reduce_s, reduce_hit) = comm[(id(s), "all_gather")], comm[(id(s), "reduce_scatter")]
        return Layer(s.name, sum(s.seconds[p] for p in phases), gather_s=gather_s, gather_hit=gather_hit,
                     reduce_s=reduce_s if reduce else 0.0, reduce_hit=reduce_hit, slowed=_slowed(s, phases, chip))

    forward = overlapped([layer(s, ("forward",), False) for s, _ in expanded])
    backward = overlapped([layer(s, ("backward", "recompute"), True) for s, _ in reversed(expanded)])
    return forward.span_s, backward.span_s


def _segment_params(model: ModelSpec, lay: Layout, work: StageWork) -> list[StageParams]:
    """Each segment's parameters on one chip: a layer's (per layer of a run), the embedding's, the head's (a tied
    head's own copy when pp > 1), vocab-parallel over tp."""
    tied_copy = lm_head_matrix(model) if model.tied_embeddings and lay.pp > 1 else 0
    one_off = {"embedding": embedding_params(model) / lay.tp, "head": (head_params(model) + tied_copy) / lay.tp}
    return [local_params(model, lay, layer_params(model, s.layer)) if s.layer is not None
            else StageParams(one_off[s.name], 0.0) for s in work.segments]


def estimate_training(config: TrainConfig) -> TrainingEstimate:
    """Estimate one training step of a transformer. Raise PerfsimError for an inconsistent layout or schedule, a
    chip without the precision asked, or (checked) a step that does not fit."""
    from perfsim.models.loader import load_model

    c = config
    model = load_model(c.model)
    chip, system, devices = hardware_for(c.hardware, c.devices)
    if c.schedule == "interleaved" and c.pp == 1:
        raise PerfsimError("--schedule interleaved needs --pp above 1 (one stage has no pipeline to interleave)")
    if "virtual_stages" in c.model_fields_set and c.schedule != "interleaved":
        raise PerfsimError("--virtual-stages applies to --schedule interleaved only")
    virtual = c.virtual_stages if c.schedule == "interleaved" else 1
    lay = layout(model, devices, c.tp, c.pp, c.dp, c.ep, c.zero, c.micro_batch, c.global_batch, virtual)
    if c.precision == "fp8":
        _check_fp8(chip)
    memory = training_memory(model, lay, chip, c.seq_len, c.optimizer, c.recompute == "full")
    if c.check_memory:
        check_fits(memory, model, chip, lay)
    group = lay.tp * lay.pp * lay.ep  # one expert-parallel group of replicas runs every op a chip runs
    scenario = validate(Scenario, {"model": c.model, "hardware": c.hardware, "devices": group, "tp": lay.tp,
                                   "pp": lay.pp, "dp": lay.ep, "ep": lay.ep, "expert_tp": lay.tp, "phase": "prefill",
                                   "prompt_len": c.seq_len, "batch": lay.micro_batch * lay.ep, "micro_batches": 1},
                        "train")
    r = resolve(scenario, system if group > 1 else chip)
    stages = stage_work(r, system or chip, c.precision, c.recompute == "full")
    params = [_segment_params(model, lay, work) for work in stages]
    grad_bytes = 4 if c.grad_reduce == "fp32" else GRAD_BYTES
    if lay.zero == 3:
        for work, p in zip(stages, params, strict=True):
            forward, backward = _zero3_times(work, p, lay, chip, system, grad_bytes)
            # ZeRO-3's pass takes at least its compute: a negative difference is float residue (−1e-19 s)
            work.exposed_s = (max(forward - work.forward_s, 0.0), max(backward - work.backward_s, 0.0))
    run = None
    if lay.pp > 1:
        send = stages[1].send.time_s if stages[1].send else 0.0
        run = pipeline([w.forward_s for w in stages], [w.backward_s for w in stages], send, lay.micro_batches,
                       virtual)
    overlaps = [] if lay.zero == 3 or lay.dp == 1 else [
        _dp_overlap(work, p, lay, chip, system, c.bucket_mb * 2**20, grad_bytes)
        for work, p in zip(stages, params, strict=True)]
    heaviest = max((stage_params(model, lay, s) for s in range(lay.pp)), key=lambda p: p.total)
    shard = StageParams(heaviest.dense / (lay.dp if lay.zero >= 1 else 1),
                        heaviest.experts / (lay.expert_dp if lay.zero >= 1 else 1))
    optimizer_s = cost(OptimizerStep(params=max(1, round(shard.total)), optimizer=c.optimizer), chip).time_s
    gather_s = collective_s("all_gather", heaviest, lay, system) if lay.zero in (1, 2) else 0.0
    return TrainingEstimate(c, model, chip, system, lay, stages, run, overlaps, optimizer_s, gather_s, memory)

"""How a training run is laid out on its chips: the degrees, micro-batches, and the chips' share of the model.

Dense layers: tp · pp · dp = devices (tensor parallelism inside a node, pipeline stages, data-parallel replicas;
chips of a stage numbered tp-major, so a DP group is every tp-th chip). MoE layers (Megatron-style): `ep`
consecutive DP replicas form an expert-parallel group that splits the experts ep ways (each expert split tp
ways); the experts' data-parallel group is then dp / ep replicas. Each replica runs global_batch / dp sequences
per step in micro-batches of `micro_batch` sequences: m = global_batch / (dp · micro_batch) micro-batches
(gradient accumulation on one stage, the pipeline's micro-batches on several).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware
from perfsim.hardware.system import join
from perfsim.models.params import LayerParams, embedding_params, head_params, layer_params, lm_head_matrix
from perfsim.models.spec import ModelSpec


@dataclass(frozen=True)
class Layout:
    devices: int
    tp: int
    pp: int
    dp: int
    ep: int
    zero: int
    micro_batch: int
    global_batch: int
    micro_batches: int
    virtual: int

    @property
    def expert_dp(self) -> int:
        """Replicas of each expert shard that all-reduce its gradients."""
        return self.dp // self.ep


def hardware_for(name: str, devices: int | None) -> tuple[Device, System | None, int]:
    """The chip, the system of `devices` chips (None for one) and the chip count. Raise PerfsimError if the
    spec has fewer chips than asked."""
    spec = load_hardware(name)
    count = devices or spec.chips
    if isinstance(spec, System):
        if count > spec.chips:
            raise PerfsimError(f"{spec.name} has {spec.chips} chips; {count} devices requested")
        return spec.device, spec if count > 1 else None, count
    return spec, join(spec, count) if count > 1 else None, count


MAX_PIPELINE_SLOTS = 10**5
"""Most micro-batch × stage × chunk slots a pipeline schedule simulates (each costs about 0.2 ms; real steps hold a
few thousand, e.g. 256 micro-batches on 64 stages with 2 chunks = 32,768)."""


def layout(model: ModelSpec, devices: int, tp: int, pp: int, dp: int | None, ep: int, zero: int, micro_batch: int,
           global_batch: int | None, virtual: int) -> Layout:
    """The degrees resolved and checked. Raise PerfsimError naming the flag that does not fit."""
    if devices % (tp * pp):
        raise PerfsimError(f"tp ({tp}) × pp ({pp}) must divide the {devices} devices")
    dp = dp if dp is not None else devices // (tp * pp)
    if tp * pp * dp != devices:
        raise PerfsimError(f"tp ({tp}) × pp ({pp}) × dp ({dp}) = {tp * pp * dp}, not the {devices} devices")
    if ep > 1 and model.moe is None:
        raise PerfsimError(f"--ep applies to MoE models; {model.name} is dense")
    if dp % ep:
        raise PerfsimError(f"ep ({ep}) must divide dp ({dp}): an expert-parallel group is ep data-parallel replicas")
    if model.moe and model.moe.experts % ep:
        raise PerfsimError(f"ep ({ep}) must divide the {model.moe.experts} experts of {model.name}")
    if model.layers % (pp * virtual):
        raise PerfsimError(f"pp ({pp}) × virtual stages ({virtual}) must divide the {model.layers} layers")
    global_batch = global_batch or micro_batch * dp
    if global_batch % (dp * micro_batch):
        raise PerfsimError(f"global batch ({global_batch}) must be a multiple of dp ({dp}) × micro-batch "
                           f"({micro_batch}) = {dp * micro_batch} sequences")
    micro_batches = global_batch // (dp * micro_batch)
    if pp > 1 and micro_batches * pp * virtual > MAX_PIPELINE_SLOTS:
        raise PerfsimError(f"{micro_batches:,} micro-batches × pp ({pp}) × virtual stages ({virtual}) are more "
                           f"pipeline slots than the {MAX_PIPELINE_SLOTS:,} simulated; raise --micro-batch or dp, "
                           "or lower --global-batch")
    return Layout(devices, tp, pp, dp, ep, zero, micro_batch, global_batch, micro_batches, virtual)


@dataclass(frozen=True)
class StageParams:
    """Parameters one chip of a pipeline stage holds: `dense` (replicated over dp) and `experts` (over dp / ep)."""

    dense: float
    experts: float

    @property
    def total(self) -> float:
        return self.dense + self.experts


def local_params(model: ModelSpec, lay: Layout, p: LayerParams) -> StageParams:
    """One layer's parameters on one chip: attention, dense FFN and shared experts split tp ways, routed experts
    ep · tp ways; norms and the router replicated."""
    dense = (p.attention + p.dense_ffn + p.shared) / lay.tp + p.router + p.norms
    return StageParams(dense, p.experts / (lay.ep * lay.tp))


def stage_params(model: ModelSpec, lay: Layout, stage: int) -> StageParams:
    """Stage `stage`'s parameters on one chip: its layers, the embedding on the first stage and the head on the
    last (a tied head keeps its own copy when pp > 1), vocab-parallel over tp."""
    per_stage = model.layers // lay.pp
    dense = experts = 0.0
    for first, count in model.layer_runs(stage * per_stage, (stage + 1) * per_stage):
        share = local_params(model, lay, layer_params(model, first))
        dense += count * share.dense
        experts += count * share.experts
    if stage == 0:
        dense += embedding_params(model) / lay.tp
    if stage == lay.pp - 1:
        tied_copy = lm_head_matrix(model) if model.tied_embeddings and lay.pp > 1 else 0
        dense += (head_params(model) + tied_copy) / lay.tp
    return StageParams(dense, experts)

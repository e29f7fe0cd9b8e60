"""Memory per chip in training: weights, gradients, optimizer states and activations (the heaviest stage).

- Weights, gradients and optimizer states per parameter as perfsim.training.optimizer says; ZeRO stage 1
  shards the optimizer states over the data-parallel group, stage 2 the gradients too, stage 3 (FSDP) the
  weights too, which then need the gathered weights of the `prefetch` layers in flight as a buffer.
- Activations kept for the backward, per token of one layer (elements, in the activation dtype; Korthikanti
  et al. 2022 with FlashAttention, no dropout; sequence parallelism divides the hidden-sized tensors by tp):
  the two norms' inputs and outputs (4·h), q, k and v, the attention output,
  the FFN's up-projection outputs and the activation's output (gated: 3·f; plain: 2·f, per tp); an MoE layer
  keeps, per routed copy of a token, its input and its expert's up/activation outputs. With full recompute a
  layer keeps only its input (h) and one layer's full set lives during its backward.
- In 1F1B, stage s holds the activations of min(m, p − s) micro-batches (interleaved: of its warmup chunks + 1);
  the last stage also holds one micro-batch's logits (16-bit) and their fp32 softmax for the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost.roofline import level_capacity
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.params import layer_params
from perfsim.models.scenario import heads_per_rank
from perfsim.models.spec import ModelSpec
from perfsim.output import human
from perfsim.training.layout import Layout, StageParams, local_params, stage_params
from perfsim.training.optimizer import bytes_per_parameter

LOGIT_BYTES = 2 + 4  # 16-bit logits and their fp32 softmax for the cross-entropy


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per chip (the heaviest stage) and the usable capacity."""

    params_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activation_bytes: float
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def as_dict(self) -> dict[str, float]:
        return {"params_bytes": self.params_bytes, "grads_bytes": self.grads_bytes,
                "optimizer_bytes": self.optimizer_bytes, "activation_bytes": self.activation_bytes,
                "total_bytes": self.total_bytes, "capacity_bytes": self.capacity_bytes}


def layer_activation_elements(model: ModelSpec, lay: Layout, layer: int) -> float:
    """Elements one token of one layer keeps for the backward on one chip (module doc)."""
    h, d = model.hidden, model.dim_per_head
    h_sp = h / lay.tp
    heads, kv = heads_per_rank(model, layer, lay.tp)
    attention = 4 * h_sp + (2 * heads + 2 * kv) * d
    matrices = model.ffn_matrices
    if model.is_moe_layer(layer) and model.moe:
        moe = model.moe
        ffn = moe.top_k * (h + matrices * moe.expert_ffn / lay.tp)
        ffn += moe.shared_experts * matrices * (moe.shared_ffn or moe.expert_ffn) / lay.tp
    else:
        ffn = matrices * model.layer_ffn(layer) / lay.tp
    return attention + ffn


def _sharded(bytes_per: float, params: StageParams, lay: Layout, from_stage: int) -> float:
    """A per-parameter tensor's bytes on one chip, sharded over its DP group from ZeRO `from_stage` on."""
    shard = lay.zero >= from_stage
    return bytes_per * (params.dense / (lay.dp if shard else 1) + params.experts / (lay.expert_dp if shard else 1))


def in_flight(lay: Layout, stage: int) -> float:
    """Micro-batches whose activations stage `stage` holds at once (module doc), in units of the whole stage."""
    p, v, m = lay.pp, lay.virtual, lay.micro_batches
    if v == 1:
        return min(m, p - stage)
    return min(m * v, 2 * (p - stage - 1) + (v - 1) * p + 1) / v


def training_memory(model: ModelSpec, lay: Layout, chip: Device, seq_len: int, optimizer: str, recompute: bool,
                    act_dtype: str = "bf16", prefetch: int = 2) -> TrainingMemory:
    """The heaviest stage's bytes per chip (module doc)."""
    act = resolve_format(act_dtype).bits_per_element / 8
    per_param = bytes_per_parameter(optimizer)
    tokens = lay.micro_batch * seq_len
    per_stage = model.layers // lay.pp
    stages = []
    for stage in range(lay.pp):
        params = stage_params(model, lay, stage)
        weights = _sharded(per_param.param, params, lay, 3)
        runs = model.layer_runs(stage * per_stage, (stage + 1) * per_stage)
        if lay.zero >= 3:
            weights += prefetch * max(local_params(model, lay, layer_params(model, i)).total for i, _ in runs) \
                * per_param.param
        full = [(count, layer_activation_elements(model, lay, i) * tokens * act) for i, count in runs]
        if recompute:
            kept = sum(count for count, _ in full) * tokens * model.hidden / lay.tp * act
            activations = kept * in_flight(lay, stage) + max(b for _, b in full)
        else:
            activations = sum(count * b for count, b in full) * in_flight(lay, stage)
        if stage == lay.pp - 1:
            activations += tokens * -(-model.vocab // lay.tp) * LOGIT_BYTES
        stages.append(TrainingMemory(weights, _sharded(per_param.grad, params, lay, 2),
                                     _sharded(per_param.optimizer, params, lay, 1),
                                     activations, 0.0))
    worst = max(stages, key=lambda s: s.total_bytes)
    usable = chip.calibration.usable_memory_fraction
    capacity = level_capacity(chip, chip.main) * (usable.value if usable else 1.0)
    return TrainingMemory(worst.params_bytes, worst.grads_bytes, worst.optimizer_bytes, worst.activation_bytes,
                          capacity)


def check_fits(memory: TrainingMemory, model: ModelSpec, chip: Device, lay: Layout) -> None:
    """Raise PerfsimError with the breakdown when the training step does not fit a chip's memory."""
    if memory.fits:
        return
    over = memory.total_bytes - memory.capacity_bytes
    b = {k: human(v, "B", True) for k, v in memory.as_dict().items()}
    raise PerfsimError(
        f"training {model.name} does not fit on {chip.name} ({lay.devices} devices, tp {lay.tp} pp {lay.pp} dp "
        f"{lay.dp} zero {lay.zero}): needs {b['total_bytes']} per chip (weights {b['params_bytes']}, gradients "
        f"{b['grads_bytes']}, optimizer {b['optimizer_bytes']}, activations {b['activation_bytes']}) but has "
        f"{b['capacity_bytes']}; over by {human(over, 'B', True)} — raise --zero, --tp or --pp, use --recompute "
        "full, or shrink --micro-batch")

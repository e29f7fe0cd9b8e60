"""Memory per chip: weights, KV cache and activations, against capacity × the usable fraction (the chip's
calibrated usable_memory_fraction × the scenario's memory_utilization where it gives one: Resolved.memory_fraction).

- weights: each layer's attention split tp ways, dense FFN and shared experts shared_tp ways (tp unless
  the exchange gathers: perfsim.models.parallel), routed experts ep · expert_tp ways; embedding on the first
  stage and LM head on the last (a tied head keeps its own copy there when pp > 1), vocab-parallel over tp.
  The heaviest stage sets the figure.
- KV cache: per sequence of the replica (all its micro-batches), kv_len tokens × 2 (K and V) × the chip's KV
  heads × head_dim, for the stage's layers.
- activations: one layer's transient working set, tokens × (4·hidden + 3·local FFN).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost.roofline import level_capacity
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.models.params import embedding_params, head_params, layer_params, lm_head_matrix
from perfsim.models.scenario import Resolved
from perfsim.output import human


@dataclass(frozen=True)
class Footprint:
    """Bytes per chip (the heaviest pipeline stage) and the usable capacity (× Resolved.memory_fraction)."""

    weights_bytes: float
    kv_bytes: float
    activation_bytes: float
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes


def footprint(r: Resolved) -> Footprint:
    model, par = r.model, r.par
    weight_bits = resolve_format(r.weight_dtype).bits_per_element / 8
    embed_bits = resolve_format(model.embedding_dtype).bits_per_element / 8
    kv_bits = resolve_format(r.kv_dtype).bits_per_element / 8
    act_bits = resolve_format(r.scenario.activation_dtype).bits_per_element / 8
    per_stage = model.layers // par.pp
    stages = []
    for stage in range(par.pp):
        weights = kv = act = 0.0
        for i, count in model.layer_runs(stage * per_stage, (stage + 1) * per_stage):
            p = layer_params(model, i)
            local = (p.attention / par.tp + (p.dense_ffn + p.shared) / par.shared_tp
                     + p.experts / (par.ep * par.expert_tp))
            weights += count * (local + p.router + p.norms) * weight_bits
            kv_local = max(1, model.layer_kv_heads(i) // par.tp)
            kv += count * r.seqs_per_replica * r.scenario.micro_batches * r.kv_len * 2 * kv_local \
                * model.dim_per_head * kv_bits
            ffn_local = (model.moe.expert_ffn if model.is_moe_layer(i) and model.moe else model.layer_ffn(i)) / par.tp
            act = max(act, r.tokens_per_replica * (4 * model.hidden + 3 * ffn_local) * act_bits)
        if stage == 0:
            weights += embedding_params(model) / par.tp * embed_bits
        if stage == par.pp - 1:
            tied_copy = lm_head_matrix(model) if model.tied_embeddings and par.pp > 1 else 0  # the head's own copy
            weights += (head_params(model) + tied_copy) / par.tp * embed_bits
        stages.append((weights, kv, act))
    weights, kv, act = max(stages, key=sum)
    usable = r.chip.calibration.usable_memory_fraction
    capacity = level_capacity(r.chip, r.chip.main) * (usable.value if usable else 1.0) * r.memory_fraction
    return Footprint(weights, kv, act, capacity)


def check_fits(r: Resolved, fp: Footprint) -> None:
    """Raise PerfsimError saying by how much when the step does not fit a chip's memory."""
    if fp.fits:
        return
    over = fp.total_bytes - fp.capacity_bytes
    share = f"may use {human(fp.capacity_bytes, 'B', True)} ({r.memory_fraction:.0%} of its memory, " \
        "--memory-utilization)" if r.memory_fraction < 1 else f"has {human(fp.capacity_bytes, 'B', True)}"
    raise PerfsimError(
        f"{r.model.name} does not fit on {r.chip.name} with {r.par.devices} device(s): needs "
        f"{human(fp.total_bytes, 'B', True)} per chip (weights {human(fp.weights_bytes, 'B', True)}, KV "
        f"{human(fp.kv_bytes, 'B', True)}, activations {human(fp.activation_bytes, 'B', True)}) but {share}; "
        f"over by {human(over, 'B', True)} "
        f"({over / fp.capacity_bytes:.0%}) — add devices, quantise weights, or shorten the batch or context")

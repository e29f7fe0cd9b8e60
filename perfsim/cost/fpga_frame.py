"""One M3ViT frame as Edge-MoE runs it, priced on any chip: ops by layer type, task-level expert loading, energy.

A frame is the patch embedding and every encoder layer for one image and one task. Dense layers run
norm → qkv → attention → proj → residual → norm → fc1 → GELU → fc2 → residual; MoE layers (every
moe.every-th layer) replace fc1/GELU/fc2 by the task's gate and, expert by expert, the linear pair of each
expert the gate selects, then combine the top-k outputs. Task-level sparsity: a task's gate touches only
`experts_per_task` distinct experts per MoE layer, so only their weights are loaded; the routed patches
(patches × top_k) are spread evenly over them. Without a given count, the uniform-routing expectation
E·(1 − (1 − k/E)^T) is used (MoE.experts_touched), rounded.

Each op is priced by perfsim.cost.cost (each chip kind by its own model) with its energy — an FPGA by
perfsim.cost.fpga.fpga_cost directly while cost() does not dispatch the fpga kind yet; a frame's latency and
energy are the sums (one chip, ops back to back, batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfsim.cost import cost, with_energy
from perfsim.cost.fpga import fpga_cost
from perfsim.cost.opcost import OpCost
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.spec import ModelSpec
from perfsim.ops import ACTIVATION_FLOPS, Attention, Elementwise, Gemm, MoE, Norm, OpBase

PATCHES = 128
PATCH_PIXELS = 3 * 16 * 16
"""Edge-MoE's input: 256 × 128 RGB pixels in 16 × 16 patches = 128 patches (include/model.hpp)."""


@dataclass(frozen=True)
class FrameOp:
    """`op` run `repeat` times per frame, of `layer_type` (qkv, attention, experts, gelu, ...)."""

    layer_type: str
    op: OpBase
    repeat: int


@dataclass(frozen=True)
class FrameCost:
    """One frame on one chip: seconds and joules in all, and (seconds, joules) by layer type; joules None if unknown."""

    device: str
    latency_s: float
    energy_j: float | None
    by_type: dict[str, tuple[float, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class EnergyComparison:
    """Energy per frame on each chip, and the FPGA's energy-efficiency gains (frames per joule over the other's)."""

    energy_j: dict[str, float]
    fpga_vs_gpu: float
    fpga_vs_cpu: float


def moe_layers(model: ModelSpec) -> int:
    return sum(model.is_moe_layer(layer) for layer in range(model.layers))


def default_experts_per_task(model: ModelSpec, tokens: int) -> int:
    """The expected distinct experts `tokens` patches touch under uniform top-k routing, rounded (at least top_k)."""
    moe = _moe(model)
    touched = MoE(tokens=tokens, hidden=model.hidden, expert_ffn=moe.expert_ffn, experts=moe.experts,
                  top_k=moe.top_k).experts_touched
    return max(moe.top_k, round(touched))


def expert_weight_bytes(model: ModelSpec, experts_per_task: int, weight_dtype: str) -> float:
    """Expert weight bytes one frame loads: MoE layers × distinct experts × the expert's matrices (biases aside).

    Raise PerfsimError unless top_k ≤ experts_per_task ≤ experts.
    """
    moe = _moe(model)
    _check_experts(model, experts_per_task)
    elements = model.ffn_matrices * model.hidden * moe.expert_ffn
    return moe_layers(model) * experts_per_task * elements * resolve_format(weight_dtype).bits_per_element / 8


def frame_ops(model: ModelSpec, activation_dtype: str, weight_dtype: str, experts_per_task: int | None = None,
              patches: int = PATCHES) -> list[FrameOp]:
    """The ops of one frame (module doc), dense and MoE layers folded with `repeat`."""
    t, h = patches + 1, model.hidden
    act, wt = activation_dtype, weight_dtype
    heads, head_dim = model.layer_heads(0), model.dim_per_head

    def linear(m: int, k: int, n: int) -> Gemm:
        return Gemm(m=m, k=k, n=n, dtype=act, weight_dtype=wt, weight_shared=True)

    def add(inputs: int = 2, elements: int = t * h) -> Elementwise:
        return Elementwise(elements=elements, inputs=inputs, flops_per_element=inputs - 1, dtype=act)

    def gelu(rows: int, width: int) -> Elementwise:
        return Elementwise(elements=rows * width, flops_per_element=ACTIVATION_FLOPS, dtype=act)

    norm = Norm(rows=t, cols=h, norm=model.norm, dtype=act)
    attention = [("norm", norm), ("qkv", linear(t, h, 3 * heads * head_dim)),
                 ("attention", Attention(heads=heads, head_dim=head_dim, q_len=t, kv_len=t, causal=False,
                                         fused=False, dtype=act)),
                 ("proj", linear(t, heads * head_dim, h)), ("residual", add()), ("norm", norm)]
    dense = [*attention, ("ffn", linear(t, h, model.layer_ffn(0))), ("gelu", gelu(t, model.layer_ffn(0))),
             ("ffn", linear(t, model.layer_ffn(0), h)), ("residual", add())]
    n_moe = moe_layers(model)
    ops = [FrameOp("patch_embed", linear(patches, PATCH_PIXELS, h), 1), FrameOp("residual", add(), 1)]
    ops += [FrameOp(kind, op, model.layers - n_moe) for kind, op in dense]
    if n_moe:
        moe = _moe(model)
        experts = experts_per_task or default_experts_per_task(model, t)
        _check_experts(model, experts)
        rows = -(-t * moe.top_k // experts)  # routed patches per expert
        ops += [FrameOp(kind, op, n_moe) for kind, op in attention]
        ops += [FrameOp("gate", linear(t, h, moe.experts), n_moe),
                FrameOp("experts", linear(rows, h, moe.expert_ffn), n_moe * experts),
                FrameOp("gelu", gelu(rows, moe.expert_ffn), n_moe * experts),
                FrameOp("experts", linear(rows, moe.expert_ffn, h), n_moe * experts),
                FrameOp("combine", add(moe.top_k), n_moe), FrameOp("residual", add(), n_moe)]
    return ops


def frame_cost(device: Device, model: ModelSpec, experts_per_task: int | None = None,
               dtypes: tuple[str, str] | None = None) -> FrameCost:
    """One frame of `model` on `device`: (activation, weight) `dtypes` default to an FPGA design's own, else fp32."""
    if dtypes is None:
        design = getattr(device, "design", None)
        dtypes = (design.activation_dtype, design.weight_dtype) if design else ("fp32", "fp32")
    seconds, joules, by_type = 0.0, 0.0, {}
    for item in frame_ops(model, *dtypes, experts_per_task=experts_per_task):
        c = _price(item.op, device)
        s = c.time_s * item.repeat
        j = None if c.energy_j is None or joules is None else c.energy_j * item.repeat
        seconds += s
        joules = None if j is None else joules + j
        before_s, before_j = by_type.get(item.layer_type, (0.0, 0.0))
        by_type[item.layer_type] = (before_s + s, None if j is None or before_j is None else before_j + j)
    return FrameCost(device.name, seconds, joules, by_type)


def energy_comparison(fpga: Device, gpu: Device, cpu: Device, model: ModelSpec,
                      experts_per_task: int | None = None) -> EnergyComparison:
    """Energy per frame on the three chips and the FPGA's energy-efficiency gains E_gpu / E_fpga, E_cpu / E_fpga.

    Raise PerfsimError if a chip's energy is unknown (its spec gives no power, or no idle power for overheads).
    """
    energies = {}
    for chip in (fpga, gpu, cpu):
        frame = frame_cost(chip, model, experts_per_task)
        if frame.energy_j is None:
            raise PerfsimError(f"{chip.name}: energy per frame unknown (the spec's power block lacks a number)")
        energies[chip.name] = frame.energy_j
    e_fpga = energies[fpga.name]
    return EnergyComparison(energies, energies[gpu.name] / e_fpga, energies[cpu.name] / e_fpga)


def _price(op: OpBase, device: Device) -> OpCost:
    return with_energy(op, fpga_cost(op, device), device) if device.kind == "fpga" else cost(op, device)


def _moe(model: ModelSpec):
    if model.moe is None:
        raise PerfsimError(f"{model.name} has no experts (no moe: block)")
    return model.moe


def _check_experts(model: ModelSpec, experts_per_task: int) -> None:
    moe = _moe(model)
    if not moe.top_k <= experts_per_task <= moe.experts:
        raise PerfsimError(f"experts per task must be between top_k ({moe.top_k}) and experts ({moe.experts}), "
                           f"got {experts_per_task}")

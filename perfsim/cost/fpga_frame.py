"""One M3ViT frame as Edge-MoE runs it, priced on any chip: the prefill step of its scenario, by op, with energy.

A frame is one image for one task, batch 1: the scenario `frame_scenario` gives, the very workload of the
validation cases EDGEMOE-01-gpu / -02-cpu (validation/fpga.yaml): a 129-token prefill (128 patches + the class
token) with attention unfused (scores written out and read back, as the rules there fix for the GPU and CPU, and
as Edge-MoE's attention unit does), in the FPGA design's own dtypes on an FPGA, else fp32. Its ops are the trace
of perfsim.models.trace (norms with the residual add fused, qkv, attention, o_proj, the dense FFN or the MoE op on
the model's MoE layers), each priced by perfsim.cost.cost on the chip's own model; a frame's latency and energy
are the step's (perfsim.models.step), its breakdown the step's per op name.

Task-level sparsity: a task's gate touches only `experts_per_task` distinct experts per MoE layer, so only their
weights are loaded and the routed patches (patches × top_k) are spread over them. Without a count the MoE op
takes the uniform-routing expectation E·(1 − (1 − k/E)^T) (MoE.experts_touched): 16 of 16 at 129 patches. With
a count d, the frame runs the MoE layers over the task's d experts (the model's moe.experts set to d): the
weights, expert GEMMs and rows are those of d experts; the gate then scores d experts rather than all E (on the
ZCU102 the same cycles, one 16-wide output tile; elsewhere a gate GEMM of N = d instead of E).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.spec import ModelSpec
from perfsim.models.step import StepEstimate, estimate_step

PATCHES = 128
"""Edge-MoE's input: 256 × 128 RGB pixels in 16 × 16 patches = 128 patches (include/model.hpp); + 1 class token."""


@dataclass(frozen=True)
class FrameCost:
    """One frame on one chip: seconds and joules in all, and (seconds, joules) by op name; joules None if unknown."""

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


def frame_dtypes(device: Device) -> tuple[str, str]:
    """(weight, activation) dtypes of a frame on `device`: an FPGA design's own, else fp32 (PyTorch's default)."""
    design = getattr(device, "design", None)
    return (design.weight_dtype, design.activation_dtype) if design else ("fp32", "fp32")


def frame_scenario(device: Device, model: ModelSpec) -> Scenario:
    """One frame of `model` on `device` as a scenario (module doc); validation/fpga.yaml's cases are these."""
    weights, activations = frame_dtypes(device)
    return Scenario(model=model.name, hardware=device.name, phase="prefill", batch=1, prompt_len=PATCHES + 1,
                    weight_dtype=weights, activation_dtype=activations, attention="unfused")


def frame_step(device: Device, model: ModelSpec, experts_per_task: int | None = None) -> StepEstimate:
    """The step estimate of one frame of `model` on `device`, its MoE layers over `experts_per_task` experts if given.

    Raise PerfsimError unless top_k ≤ experts_per_task ≤ experts.
    """
    resolved = resolve(frame_scenario(device, model), device)
    if experts_per_task is not None:
        moe = _moe(model)
        _check_experts(model, experts_per_task)
        model = model.model_copy(update={"moe": moe.model_copy(update={"experts": experts_per_task})})
    return estimate_step(replace(resolved, model=model))


def frame_cost(device: Device, model: ModelSpec, experts_per_task: int | None = None) -> FrameCost:
    """One frame of `model` on `device` (frame_step): latency, energy, and both by op name."""
    step = frame_step(device, model, experts_per_task)
    by_type: dict[str, tuple[float, float | None]] = {}
    for c, t in zip(step.costs, step.trace.ops, strict=True):
        seconds, joules = by_type.get(c.op, (0.0, 0.0))
        op_j = None if c.energy_j is None or joules is None else joules + c.energy_j * t.repeat
        by_type[c.op] = (seconds + c.time_s * t.repeat, op_j)
    return FrameCost(device.name, step.step_s, step.energy_j, by_type)


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


def moe_layers(model: ModelSpec) -> int:
    return sum(model.is_moe_layer(layer) for layer in range(model.layers))


def expert_weight_bytes(model: ModelSpec, experts_per_task: int, weight_dtype: str) -> float:
    """Expert weight bytes one frame loads: MoE layers × distinct experts × the expert's matrices (biases aside).

    Raise PerfsimError unless top_k ≤ experts_per_task ≤ experts.
    """
    moe = _moe(model)
    _check_experts(model, experts_per_task)
    elements = model.ffn_matrices * model.hidden * moe.expert_ffn
    return moe_layers(model) * experts_per_task * elements * resolve_format(weight_dtype).bits_per_element / 8


def _moe(model: ModelSpec):
    if model.moe is None:
        raise PerfsimError(f"{model.name} has no experts (no moe: block)")
    return model.moe


def _check_experts(model: ModelSpec, experts_per_task: int) -> None:
    moe = _moe(model)
    if not moe.top_k <= experts_per_task <= moe.experts:
        raise PerfsimError(f"experts per task must be between top_k ({moe.top_k}) and experts ({moe.experts}), "
                           f"got {experts_per_task}")

"""The accelerator (GPU/NPU) cost model: kernels as the silicon runs them, on the shared roofline helpers.

- every op is one kernel launch (an MoE layer one per kernel of its sequence): `overhead_s` = the spec's
  calibrated op_overhead, else DEFAULT_LAUNCH_S; small ops come out launch-bound (`bound: overhead`);
- GEMMs: output tiles in waves over the cores, split-K, panel re-reads, dequantisation (gemm_tiles, dequant);
- fused attention: FlashAttention-style prefill and split-KV decode (attention_kernels);
- unfused attention: Q·Kᵀ GEMM, softmax, P·V GEMM, one launch each (attention_kernels.unfused_cost);
- MoE: router GEMM, top-k softmax, permute, grouped up/down GEMMs, activation, combine (moe_kernels);
- any other op (norms, softmax, elementwise, convolutions): the roofline, derated;
- what the spec leaves uncalibrated gets the stated default derating (derating); `is_calibrated(device)`
  says whether any default was used.
"""

from __future__ import annotations

from perfsim.cost.attention_kernels import attention_cost, unfused_cost
from perfsim.cost.derating import is_calibrated, rates, uncalibrated_fields
from perfsim.cost.gemm_tiles import gemm_cost
from perfsim.cost.moe_kernels import moe_cost
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, roofline
from perfsim.hardware import Device
from perfsim.ops import Attention, Gemm, MoE, OpBase


def accelerator_cost(op: OpBase, device: Device, cache: Cache = "cold") -> OpCost:
    """What `op` costs as one kernel on accelerator chip `device`. Raise PerfsimError if no unit runs its dtype."""
    if isinstance(op, Gemm):
        return gemm_cost(op, device, cache)
    if isinstance(op, Attention):
        return (attention_cost if op.fused else unfused_cost)(op, device, cache)
    if isinstance(op, MoE):
        return moe_cost(op, device, cache)
    return derated_roofline(op, device, cache)


def derated_roofline(op: OpBase, device: Device, cache: Cache = "cold") -> OpCost:
    """The roofline at the chip's sustained rates (derating.rates: each compute unit and memory level calibrated
    where the spec says, else the stated default derating), plus one launch."""
    base = roofline(op, device, cache)
    chip = rates(device)
    resource = chip.memory_seconds(base.bytes_per_level)
    for engine, flops in op.work():
        used, rate = chip.compute(engine, op.compute_dtype)
        resource[f"compute:{used}"] = resource.get(f"compute:{used}", 0.0) + flops / rate
    return OpCost(base.op, base.flops, base.bytes, resource, base.bytes_per_level, chip.launch_s)


__all__ = ["accelerator_cost", "derated_roofline", "is_calibrated", "uncalibrated_fields"]

"""Data-parallel communication of a training step, as collectives on the system's links.

Per chip, with Ψ_d dense and Ψ_e expert parameters on it and 16-bit gradients and weights (2 bytes each; gradients
reduced in fp32, TrainConfig.grad_reduce, carry 4 bytes each):
- ZeRO 0 (DDP): gradients all-reduced over the dp group in buckets during the last micro-batch's backward.
- ZeRO 1 / 2 (Megatron's distributed optimizer; DeepSpeed stage 2): gradients reduce-scattered in buckets, the
  updated weights all-gathered after the optimizer step (the same bytes on the wire as an all-reduce).
- ZeRO 3 (FSDP FULL_SHARD): every micro-batch all-gathers each layer's weights before its forward and again
  before its backward, and reduce-scatters its gradients after it: 3 · (n − 1)/n · 2Ψ bytes sent per chip per
  micro-batch on a ring, 1.5× an all-reduce's 2 · (n − 1)/n · 2Ψ (Rajbhandari et al. 2020).
Dense parameters reduce over the dp group (every tp-th chip); expert parameters over their dp / ep replicas
(every tp·ep-th chip). A group of one communicates nothing.
"""

from __future__ import annotations

from perfsim.cost import cost
from perfsim.hardware import System
from perfsim.ops import Collective
from perfsim.training.layout import Layout, StageParams

GRAD_BYTES = PARAM_BYTES = 2


def collective_s(kind: str, params: StageParams, lay: Layout, system: System | None,
                 bytes_per_param: float = GRAD_BYTES) -> float:
    """Seconds of one `kind` collective of these parameters' 16-bit tensors, dense and expert groups in turn."""
    seconds = 0.0
    for count, group, stride in ((params.dense, lay.dp, lay.tp), (params.experts, lay.expert_dp, lay.tp * lay.ep)):
        if group > 1 and count > 0 and system is not None:
            seconds += cost(Collective(kind=kind, size_bytes=count * bytes_per_param, group=group, stride=stride),
                            system).time_s
    return seconds


def ring_bytes_sent(kind: str, size_bytes: float, group: int) -> float:
    """Bytes one rank sends in a ring collective of nccl-tests size `size_bytes` over `group` ranks."""
    factor = 2 if kind == "all_reduce" else 1
    return factor * (group - 1) / group * size_bytes


def zero3_bytes_per_micro_batch(params: float, group: int) -> float:
    """Bytes one chip sends per micro-batch under ZeRO-3 (module doc): two all-gathers and a reduce-scatter."""
    size = params * PARAM_BYTES
    return 2 * ring_bytes_sent("all_gather", size, group) + ring_bytes_sent("reduce_scatter", size, group)

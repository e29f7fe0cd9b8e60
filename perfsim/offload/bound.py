"""The MoE-Lens throughput bound (arXiv 2504.09345, Stage 1): peak rates, every resource busy at once.

One iteration of n tokens needs, each resource alone at its datasheet peak (the CPU at its all-core rate):
  link  T_link = max(host→GPU, GPU→host bytes) / B_link   (streamed weights, attention in- and outputs)
  GPU   T_gpu  = GPU FLOPs / C_GPU                        (every op but CPU attention)
  DRAM  T_dram = host DRAM bytes / B_DRAM                 (weights read for the link + KV read + KV written)
  CPU   T_cpu  = CPU attention FLOPs / C_CPU (fp32, the CPU cost model's sustained rate: Host.cpu_flops)
With perfect overlap an iteration takes max of them, so throughput ≤ n / max(T_link, T_gpu, T_dram, T_cpu);
the largest term is the binding resource. Host memory capacity caps n: the KV cache of the batch must fit in
host DRAM beside the host-placed weights.

MoE-Lens's Eq. 2: an expert layer's GEMMs do n·N_k·2P FLOP on N_e·P weights (P parameters per expert, b bytes
each) streamed at B, so their intensity on the link is I = n·N_k·2 / (N_e·b) FLOP/B (n·N_k/N_e in bf16), and
the GPU keeps up with the link once I ≥ C_GPU / B: n ≥ (C_GPU / B)·(N_e / N_k) tokens (`saturation_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost.roofline import level_capacity
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware
from perfsim.models.footprint import footprint
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.offload.iteration import (
    Iteration,
    check_single_chip,
    host_weight_bytes,
    iteration,
    kv_bytes_per_token,
    streamed_bytes,
)
from perfsim.offload.placement import Host, Offload, host_of, is_expert_op

ROLES = ("link", "gpu", "dram", "cpu")
"""The four resources of the bound, in the order Bound.seconds holds them."""
CAPACITY = "capacity"
"""Prefix of the binding resource when host (or GPU) memory capacity, not a rate, caps the throughput."""


@dataclass(frozen=True)
class Bound:
    """The four per-iteration times of `tokens` tokens at peak rates, each keyed by its resource name."""

    tokens: int
    seconds: dict[str, float]

    @property
    def iteration_s(self) -> float:
        return max(self.seconds.values())

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.iteration_s

    @property
    def bound(self) -> str:
        """The binding resource: the one the iteration waits for."""
        return max(self.seconds, key=lambda k: self.seconds[k])

    def ceilings(self) -> dict[str, float | None]:
        """Tokens/s each resource alone allows at this batch, by resource name (None for a resource the iteration
        does not use: the CPU in a prefill)."""
        return {name: self.tokens / s if s else None for name, s in self.seconds.items()}

    def by_role(self) -> dict[str, float | None]:
        """The ceilings keyed `<role>_ceiling_tokens_per_s` (roles: link, gpu, dram, cpu)."""
        return {f"{role}_ceiling_tokens_per_s": value for role, value in zip(ROLES, self.ceilings().values(),
                                                                                   strict=True)}


def offloaded(scenario: Scenario, hardware: Device | System | None = None) -> tuple[Resolved, Offload, Host]:
    """The scenario resolved as one group of tokens, its placement and its host. Raise PerfsimError if it has no
    placement, runs on several chips, or its hardware has no host."""
    if scenario.offload is None:
        raise PerfsimError("the scenario has no offload placement (offload: moe-lens, or a placement block)")
    r = resolve(scenario.model_copy(update={"micro_batches": 1}), hardware)
    check_single_chip(r)
    spec = hardware if hardware is not None else load_hardware(scenario.hardware)
    return r, scenario.offload, host_of(spec)


def gpu_dtype(r: Resolved) -> str:
    """The dtype the GPU's GEMMs compute in (the activation dtype); Raise PerfsimError if the chip has no peak."""
    dtype = resolve_format(r.scenario.activation_dtype).name
    if r.chip.peak_flops(dtype) is None:
        raise PerfsimError(f"{r.chip.name} has no {dtype} peak for the offloaded GEMMs")
    return dtype


def bound_of(it: Iteration, host: Host) -> Bound:
    """The peak-rate times of one iteration of a single token group (module doc)."""
    r = it.resolved
    if r.scenario.micro_batches != 1:
        raise ValueError("the bound counts the iteration as one group of tokens (micro_batches = 1)")
    dtype = gpu_dtype(r)
    seconds = {
        f"link:{host.link.name}": it.link_bytes / host.link.bandwidth_per_direction,
        f"compute:{dtype}": it.gpu_flops / r.chip.peak_flops(dtype),  # type: ignore[operator]
        f"memory:{host.cpu.main.name}": it.dram_bytes / host.dram_bandwidth,
        "compute:fp32": it.cpu_flops / host.cpu_flops if it.cpu_flops else 0.0,
    }
    return Bound(it.tokens, seconds)


def saturation_tokens(it: Iteration, host: Host) -> float:
    """MoE-Lens's Eq. 2 for the first MoE layer: tokens whose expert GEMMs take as long on the GPU as their
    streamed expert weights on the link, C_GPU / B × (expert bytes) / (expert FLOPs per token)."""
    r = it.resolved
    layer = next((layer for layer in it.layers if any(op.label == "experts" for op in layer.gpu_ops)), None)
    if layer is None:
        raise PerfsimError(f"{r.model.name} has no MoE layer: saturation tokens are an expert layer's")
    experts = [op for op in layer.gpu_ops if is_expert_op(op.label)]
    flops_per_token = sum(op.flops for op in experts) / r.tokens_per_replica
    dtype = gpu_dtype(r)
    ridge = r.chip.peak_flops(dtype) / host.link.bandwidth_per_direction  # type: ignore[operator]
    return ridge * sum(streamed_bytes(op) for op in experts) / flops_per_token


@dataclass(frozen=True)
class Capacity:
    """How many sequences' KV cache fits where the placement keeps it, beside the weights there."""

    level: str  # "ddr4" (host) or the GPU's main level
    free_bytes: float  # for the KV cache
    kv_bytes_per_sequence: float
    sequences: int

    @property
    def resource(self) -> str:
        return f"{CAPACITY}:{self.level}"


def capacity(r: Resolved, offload: Offload, host: Host, kv_tokens: int) -> Capacity:
    """Sequences of `kv_tokens` cached tokens each whose KV cache fits. Raise PerfsimError when the weights alone
    overflow host DRAM or GPU memory (the GPU holds its resident weights and `weight_buffers` streamed layers)."""
    util = r.scenario.memory_utilization
    it = iteration(r, offload)
    host_weights = host_weight_bytes(r, offload)
    host_free = host.dram_capacity * util - host_weights
    if host_free < 0:
        raise PerfsimError(f"the host-placed weights ({host_weights / 2**30:.1f} GiB) overflow {util:g} of the host's "
                           f"{host.dram_capacity / 2**30:.0f} GiB of {host.cpu.main.name}")
    all_weights = footprint(r).weights_bytes
    buffers = offload.weight_buffers * max(layer.streamed_bytes for layer in it.layers)
    gpu_capacity = level_capacity(r.chip, r.chip.main) * util
    gpu_free = gpu_capacity - (all_weights - host_weights) - buffers
    if gpu_free < 0:
        raise PerfsimError(f"{r.chip.name}: its resident weights and {offload.weight_buffers} streamed layers "
                           f"({(all_weights - host_weights + buffers) / 2**30:.1f} GiB) overflow {util:g} of its "
                           f"{level_capacity(r.chip, r.chip.main) / 2**30:.0f} GiB")
    free, level = (host_free, host.cpu.main.name) if offload.kv == "host" else (gpu_free, r.chip.main.name)
    per_sequence = kv_bytes_per_token(r) * kv_tokens
    return Capacity(level, free, per_sequence, int(free // per_sequence))

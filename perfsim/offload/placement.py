"""Where an offloaded scenario keeps its weights and KV cache, and where each op runs (MoE-Lens, arXiv 2504.09345).

A system spec with a `host` (a CPU socket, `host_sockets` of them) reaches host DRAM over the chip's
`host_link`. Weights placed on the host live in host DRAM and stream to the GPU over that link once per
iteration (every layer, every expert: routing is not known before the layer runs); the GPU holds
`weight_buffers` layers of them at once. A KV cache on the host lives in host DRAM, and decode attention
runs on the host CPU over it; prefill attention runs on the GPU and writes its new keys and values back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from perfsim.cost.roofline import compute_rate
from perfsim.errors import PerfsimError
from perfsim.hardware.common import Count, LinkPort, Spec
from perfsim.hardware.cpu import Cpu
from perfsim.hardware.device import Device
from perfsim.hardware.system import System

Where = Literal["host", "gpu"]
PRESET = "moe-lens"
"""The shorthand `offload: moe-lens` (`--offload moe-lens`): every default below."""


class Offload(Spec):
    """The placement block of an offloaded scenario (`offload:`); `offload: moe-lens` takes every default."""

    experts: Where = Field("host", description="routed and shared expert weights and their router: host DRAM "
                           "(streamed to the GPU over the host link every iteration) or GPU memory")
    dense: Where = Field("gpu", description="every other weight (attention projections, dense FFNs, norms, "
                         "embedding, head): host DRAM (streamed) or GPU memory")
    kv: Where = Field("host", description="the KV cache: host DRAM or GPU memory")
    attention: Literal["cpu", "gpu"] = Field("cpu", description="where decode attention runs (prefill attention "
                                             "always runs on the GPU)")
    groups: Count = Field(2, le=64, description="token groups the pipeline alternates (MoE-Lens's VSLPipe: the CPU "
                          "attention of one overlaps the GPU work of the other); at most the batch")
    weight_buffers: Count = Field(2, le=64, description="layers of streamed weights the GPU holds at once (2: "
                                  "double buffering, a layer's transfer overlapping the layer before)")

    @model_validator(mode="after")
    def _consistent(self) -> Offload:
        if self.attention == "cpu" and self.kv != "host":
            raise ValueError("attention: cpu reads the KV cache from host DRAM: it needs kv: host")
        if self.attention == "gpu" and self.kv == "host":
            raise ValueError("kv: host with attention: gpu would stream the KV cache over the host link, which is "
                             "not modelled: give kv: gpu or attention: cpu")
        return self


@dataclass(frozen=True)
class Host:
    """The host side of an offloaded system: its CPU socket, how many, and the chip's link to it."""

    cpu: Cpu
    sockets: int
    link: LinkPort

    @property
    def dram_bandwidth(self) -> float:
        """Bytes/s of every socket's main memory together."""
        return self.cpu.main.bandwidth * self.sockets

    @property
    def dram_capacity(self) -> float:
        """Bytes of every socket's main memory together."""
        return self.cpu.main.capacity * self.sockets

    @property
    def cpu_flops(self) -> float:
        """Sustained fp32 FLOP/s of every socket together (CPU attention computes in fp32), as the CPU cost model
        rates its cores (roofline.compute_rate: all cores at calibration.sustained_clock, else at the stated default
        ratio of the peak clock, not the single-core turbo the datasheet peak assumes)."""
        return compute_rate(self.cpu, "matrix", "fp32")[1] * self.sockets


def host_of(hardware: Device | System) -> Host:
    """The host of `hardware`; Raise PerfsimError if it is not a system spec with a host."""
    if not isinstance(hardware, System) or hardware.host is None or hardware.host_port is None:
        raise PerfsimError(f"offload needs a system spec with a host CPU and its link (host:, host_link:); "
                           f"{hardware.name} has none (e.g. host-8380x2-a40)")
    return Host(hardware.host, hardware.host_sockets, hardware.host_port)


def is_expert_op(name: str) -> bool:
    """Whether a trace op (by name) computes with expert weights: the routed experts or the shared experts' FFN."""
    return name == "experts" or name.startswith("shared_")

"""Wafer-scale meshes in WaferLLM's PLMR terms: P cores, per-hop Latency, small per-core Memory, limited Routing."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from perfsim.hardware.common import Count, DeviceBase, MemoryLevel, Source, Spec


class Mesh(Spec):
    """The 2-D core mesh: `width` × `height` cores, each with a router.

    `hop_latency_cycles`: cycles for a message to cross one hop; `message_overhead_cycles`: cycles a
    message costs its sender and receiver besides its hops and bytes (core to router and back, once per
    dependent round); `link_bits_per_cycle`: bits per cycle to each neighbour, per direction;
    `max_routes_per_core`: routes (colours) one router can hold.
    """

    width: Count
    height: Count
    hop_latency_cycles: Annotated[float, Field(gt=0)]
    message_overhead_cycles: Annotated[float, Field(ge=0)]
    link_bits_per_cycle: Count
    max_routes_per_core: Count
    source: Source


class WaferMesh(DeviceBase):
    """A wafer-scale chip such as Cerebras WSE-2; memory levels with `scope: core` are per core."""

    kind: Literal["wafer_mesh"]
    mesh: Mesh

    @property
    def cores(self) -> int:
        return self.mesh.width * self.mesh.height

    @property
    def core_memory(self) -> MemoryLevel:
        """The per-core memory level (`scope: core`): WSE-2's 48 KiB SRAM."""
        return next(level for level in self.memory if level.scope == "core")

    @model_validator(mode="after")
    def _has_core_memory(self) -> "WaferMesh":
        if not any(level.scope == "core" for level in self.memory):
            raise ValueError("a wafer mesh needs a memory level with scope: core (the per-core SRAM)")
        for unit in self.compute:
            if unit.per_cycle is not None and unit.cores != self.cores:
                raise ValueError(f"compute unit '{unit.name}' has {unit.cores} cores but the mesh has "
                                 f"{self.mesh.width} x {self.mesh.height} = {self.cores}")
        return self

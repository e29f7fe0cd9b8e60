"""WaferLLM's comparisons as ratios of two predictions: the same kernel or step on a wafer and on a GPU.

The wafer side is priced by perfsim.cost.wafer_mesh (a region searched unless given); the GPU side by
perfsim.cost.cost, the accelerator model. Speed-up = GPU seconds / wafer seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfsim.cost import OpCost, cost
from perfsim.cost.wafer_mesh import Algorithm, MeshOpCost, op_cost
from perfsim.cost.wafer_plan import KvPolicy, wafer_step
from perfsim.errors import PerfsimError
from perfsim.hardware import WaferMesh, load_hardware
from perfsim.models.scenario import Scenario
from perfsim.models.step import StepEstimate, estimate_step
from perfsim.ops import OpBase

WAFER = "cerebras-wse2"
GPU = "a100-sxm-80gb"


@dataclass(frozen=True)
class KernelPair:
    """One op on the wafer and on the GPU."""

    wafer: MeshOpCost
    gpu: OpCost

    @property
    def speedup(self) -> float:
        return self.gpu.time_s / self.wafer.time_s


@dataclass(frozen=True)
class StepPair:
    """One step of a scenario on the wafer and on the GPU."""

    wafer: StepEstimate
    gpu: StepEstimate

    @property
    def speedup(self) -> float:
        return self.gpu.step_s / self.wafer.step_s


def _wafer(name: str) -> WaferMesh:
    device = load_hardware(name)
    if not isinstance(device, WaferMesh):
        raise PerfsimError(f"{name} is a {device.kind}, not a wafer_mesh")
    return device


def kernel_pair(op: OpBase, wafer: str = WAFER, gpu: str = GPU, region: int | None = None,
                algorithm: Algorithm = "auto") -> KernelPair:
    """`op` on `wafer` (on `region`×`region` cores by `algorithm`; the fastest region when not given) and on `gpu`."""
    return KernelPair(op_cost(op, _wafer(wafer), region, algorithm), cost(op, load_hardware(gpu)))


def step_pair(scenario: dict[str, Any], wafer: str = WAFER, gpu: str = GPU, region: int | None = None,
              kv_policy: KvPolicy = "shift") -> StepPair:
    """The scenario (Scenario fields, without `hardware`) on `wafer` placed by plan_wafer and on `gpu`."""
    on_wafer = wafer_step(Scenario(**scenario, hardware=wafer), region, kv_policy)
    return StepPair(on_wafer, estimate_step(Scenario(**scenario, hardware=gpu)))

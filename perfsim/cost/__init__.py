"""The cost model: a pure function of (op, hardware) → OpCost, one model per device kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from perfsim.cost.accelerator import accelerator_cost, is_calibrated
from perfsim.cost.collectives import bus_bandwidth, collective_cost
from perfsim.cost.cpu import cpu_cost
from perfsim.cost.energy import op_energy
from perfsim.cost.fpga import fpga_cost
from perfsim.cost.mcu import mcu_cost
from perfsim.cost.opcost import OpCost
from perfsim.cost.pim import pim_cost
from perfsim.cost.roofline import Cache
from perfsim.cost.wafer_mesh import wafer_mesh_cost
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.ops import Collective, OpBase

KIND_COSTS: dict[str, Callable[[OpBase, Device, Cache], OpCost]] = {
    "accelerator": accelerator_cost, "cpu": cpu_cost, "fpga": fpga_cost, "mcu": mcu_cost, "pim": pim_cost,
    "wafer_mesh": wafer_mesh_cost}
"""Each device kind's own cost model (all built on the shared roofline helpers in perfsim.cost.roofline)."""


def cost(op: OpBase, hardware: Device | System, cache: Cache = "cold") -> OpCost:
    """What `op` costs: collectives on a system's links, any other op on one of its chips; with its energy.
    An accelerator chip's cost says `calibrated=False` when a default derating stood in for a missing calibration.

    Raise PerfsimError if a collective is asked of a single chip.
    """
    if isinstance(op, Collective):
        if not isinstance(hardware, System):
            raise PerfsimError(f"{op.kind} needs a system of chips; {hardware.name} is one chip")
        c = collective_cost(op, hardware)
    else:
        chip = hardware.device if isinstance(hardware, System) else hardware
        c = KIND_COSTS[chip.kind](op, chip, cache)
        if chip.kind == "accelerator" and not is_calibrated(chip):
            c = replace(c, calibrated=False)
    return with_energy(op, c, hardware)


def with_energy(op: OpBase, c: OpCost, hardware: Device | System) -> OpCost:
    """`c` with the joules `op` takes on `hardware` (see perfsim.cost.energy)."""
    energy_j, model = op_energy(op, c, hardware)
    return replace(c, energy_j=energy_j, energy_model=model)


__all__ = ["Cache", "OpCost", "bus_bandwidth", "cost", "with_energy"]

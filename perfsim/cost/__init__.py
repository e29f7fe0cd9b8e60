"""The cost model: a pure function of (op, hardware) → OpCost. Kind-specific models slot in here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from perfsim.cost.accelerator import accelerator_cost, is_calibrated
from perfsim.cost.collectives import bus_bandwidth, collective_cost
from perfsim.cost.cpu import cpu_cost
from perfsim.cost.energy import op_energy
from perfsim.cost.fpga import fpga_cost
from perfsim.cost.opcost import OpCost
from perfsim.cost.pim import pim_cost
from perfsim.cost.roofline import Cache, roofline
from perfsim.cost.wafer_mesh import wafer_mesh_cost
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.ops import Collective, OpBase

KIND_COSTS: dict[str, Callable[[OpBase, Device, Cache], OpCost]] = {
    "accelerator": accelerator_cost, "cpu": cpu_cost, "fpga": fpga_cost, "pim": pim_cost,
    "wafer_mesh": wafer_mesh_cost}
"""The device kinds with a cost model of their own; the others are priced by the shared roofline."""
UNMODELLED = {
    "mcu": "MAC/cycle per dtype with software-emulated floats and the cluster's barrier costs",
}
"""The mechanism each kind still priced by the plain roofline lacks (its estimates say so on stderr)."""


def unmodelled_mechanism(device: Device | System) -> str | None:
    """The mechanism `device`'s estimates lack while its kind is priced by the plain roofline; None if modelled."""
    chip = device.device if isinstance(device, System) else device
    return UNMODELLED.get(chip.kind)


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
        c = KIND_COSTS.get(chip.kind, roofline)(op, chip, cache)
        if chip.kind == "accelerator" and not is_calibrated(chip):
            c = replace(c, calibrated=False)
    return with_energy(op, c, hardware)


def with_energy(op: OpBase, c: OpCost, hardware: Device | System) -> OpCost:
    """`c` with the joules `op` takes on `hardware` (see perfsim.cost.energy)."""
    energy_j, model = op_energy(op, c, hardware)
    return replace(c, energy_j=energy_j, energy_model=model)


__all__ = ["Cache", "OpCost", "bus_bandwidth", "cost", "unmodelled_mechanism", "with_energy"]

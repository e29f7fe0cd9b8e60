"""The cost model: a pure function of (op, hardware) → OpCost. Kind-specific models slot in here."""

from __future__ import annotations

from dataclasses import replace

from perfsim.cost.collectives import bus_bandwidth, collective_cost
from perfsim.cost.energy import op_energy
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, roofline
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.ops import Collective, OpBase


def cost(op: OpBase, hardware: Device | System, cache: Cache = "cold") -> OpCost:
    """What `op` costs: collectives on a system's links, any other op on one of its chips; with its energy.

    Raise PerfsimError if a collective is asked of a single chip.
    """
    if isinstance(op, Collective):
        if not isinstance(hardware, System):
            raise PerfsimError(f"{op.kind} needs a system of chips; {hardware.name} is one chip")
        c = collective_cost(op, hardware)
    else:
        c = roofline(op, hardware.device if isinstance(hardware, System) else hardware, cache)
    energy_j, model = op_energy(op, c, hardware)
    return replace(c, energy_j=energy_j, energy_model=model)


__all__ = ["Cache", "OpCost", "bus_bandwidth", "cost"]

"""The cost model: a pure function of (op, hardware) → OpCost, one model per device kind."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import replace
from importlib import import_module

from perfsim.cost.collectives import bus_bandwidth, collective_cost
from perfsim.cost.energy import op_energy
from perfsim.cost.memo import PerObject
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.ops import Collective, OpBase

KIND_MODELS: dict[str, str] = {
    "accelerator": "perfsim.cost.accelerator:accelerator_cost", "cpu": "perfsim.cost.cpu:cpu_cost",
    "fpga": "perfsim.cost.fpga:fpga_cost",
    "mac_array": "perfsim.cost.mac_array:mac_array_cost",
    "mcu": "perfsim.cost.mcu:mcu_cost", "pim": "perfsim.cost.pim:pim_cost",
    "wafer_mesh": "perfsim.cost.wafer_mesh:wafer_mesh_cost"}
"""Each device kind's own cost model as `module:function` (all built on the shared roofline helpers in
perfsim.cost.roofline), imported on first use so that a run pays only for the kinds it prices."""

KIND_COSTS: dict[str, Callable[[OpBase, Device, Cache], OpCost]] = {}
"""The cost models imported so far, by device kind (see kind_cost)."""


def kind_cost(kind: str) -> Callable[[OpBase, Device, Cache], OpCost]:
    """The cost model of device kind `kind`, imported from KIND_MODELS on first use."""
    if kind not in KIND_COSTS:
        module, name = KIND_MODELS[kind].split(":")
        KIND_COSTS[kind] = getattr(import_module(module), name)
    return KIND_COSTS[kind]


MEMO_ENTRIES = 65_536
"""Costs remembered per hardware object (ops and specs are frozen, so a cost never goes stale); a sweep over
more distinct ops than this starts the memo afresh rather than growing without bound."""
_memos: PerObject[Device | System, dict[tuple[OpBase, Cache], OpCost]] = PerObject(lambda _: {})


def cost(op: OpBase, hardware: Device | System, cache: Cache = "cold") -> OpCost:
    """What `op` costs: collectives on a system's links, any other op on one of its chips; with its energy.
    An accelerator chip's cost says `calibrated=False` when a default derating stood in for a missing calibration.
    Memoised per hardware object on (op, cache): the same op on the same spec object is priced once.

    Raise PerfsimError if a collective is asked of a single chip, or for a cache other than cold or warm.
    """
    memo = _memos(hardware)
    try:
        return memo[op, cache]
    except KeyError:
        pass
    except TypeError:  # an op with an unhashable field (a list): priced every time
        return _cost(op, hardware, cache)
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[op, cache] = c = _cost(op, hardware, cache)
    return c


def _cost(op: OpBase, hardware: Device | System, cache: Cache) -> OpCost:
    if cache not in typing.get_args(Cache):
        raise PerfsimError(f"cache: '{cache}' is not one of {', '.join(typing.get_args(Cache))}")
    if isinstance(op, Collective):
        if not isinstance(hardware, System):
            raise PerfsimError(f"{op.kind} needs a system of chips; {hardware.name} is one chip")
        c = collective_cost(op, hardware)
    else:
        chip = hardware.device
        c = kind_cost(chip.kind)(op, chip, cache)
        if chip.kind == "accelerator":
            from perfsim.cost.accelerator import is_calibrated

            if not is_calibrated(chip):
                c = replace(c, calibrated=False)
    return with_energy(op, c, hardware)


def with_energy(op: OpBase, c: OpCost, hardware: Device | System) -> OpCost:
    """`c` with the joules `op` takes on `hardware` (see perfsim.cost.energy)."""
    energy_j, model = op_energy(op, c, hardware)
    return replace(c, energy_j=energy_j, energy_model=model)


__all__ = ["Cache", "OpCost", "bus_bandwidth", "cost", "with_energy"]

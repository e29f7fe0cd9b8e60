"""Microcontrollers: a few simple cores, MAC/cycle per dtype, FPU or emulated floats, tiny SRAM."""

from typing import Annotated, Literal

from pydantic import Field

from perfsim.hardware.common import Count, DeviceBase, Source, Spec


class Synchronisation(Spec):
    """Cost of coordinating the cluster's cores: one barrier, and forking work to them."""

    barrier_cycles: Annotated[float, Field(ge=0)]
    fork_cycles: Annotated[float, Field(ge=0)] = 0
    source: Source


class Mcu(DeviceBase):
    """A microcontroller or PULP-style cluster; `cores` counts the cores that run kernels."""

    kind: Literal["mcu"]
    cores: Count
    fabric_controller: bool = False
    sync: Synchronisation | None = None

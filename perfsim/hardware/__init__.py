"""Hardware descriptors: one pydantic model per device kind, systems of chips, and the loader."""

import os
import sys
import types

from perfsim.hardware.accelerator import Accelerator
from perfsim.hardware.common import Calibrated, ComputeUnit, DeviceBase, MemoryLevel
from perfsim.hardware.cpu import Cpu
from perfsim.hardware.device import DEVICE_KINDS, Device
from perfsim.hardware.fpga import Fpga
from perfsim.hardware.loader import SPEC_DIR, Hardware, load_hardware, shipped_names
from perfsim.hardware.mac_array import MacArray
from perfsim.hardware.mcu import Mcu
from perfsim.hardware.pim import Pim
from perfsim.hardware.system import Interconnect, System
from perfsim.hardware.wafer_mesh import WaferMesh

__all__ = [
    "DEVICE_KINDS", "SPEC_DIR", "Accelerator", "Calibrated", "ComputeUnit", "Cpu", "Device", "DeviceBase",
    "Fpga", "Hardware", "Interconnect", "MacArray", "Mcu", "MemoryLevel", "Pim", "System", "WaferMesh",
    "load_hardware", "shipped_names",
]


class _CallablePackage(types.ModuleType):
    """`perfsim.hardware` is both this package and the API's `ps.hardware(ref)`: importing the package sets
    the attribute `perfsim.hardware` to it, so the package itself answers the call."""

    def __call__(self, ref: str | os.PathLike[str] | Device | System) -> Device | System:
        from perfsim.api import hardware

        return hardware(ref)


sys.modules[__name__].__class__ = _CallablePackage

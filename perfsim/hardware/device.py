"""The discriminated union of every device kind, keyed on `kind`."""

from typing import Annotated

from pydantic import Field

from perfsim.hardware.accelerator import Accelerator
from perfsim.hardware.cpu import Cpu
from perfsim.hardware.fpga import Fpga
from perfsim.hardware.mac_array import MacArray
from perfsim.hardware.mcu import Mcu
from perfsim.hardware.pim import Pim
from perfsim.hardware.wafer_mesh import WaferMesh

Device = Annotated[Accelerator | Cpu | WaferMesh | Pim | Mcu | Fpga | MacArray, Field(discriminator="kind")]
DEVICE_KINDS = ("accelerator", "cpu", "wafer_mesh", "pim", "mcu", "fpga", "mac_array")

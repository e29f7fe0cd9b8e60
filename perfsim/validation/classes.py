"""Hardware classes, the groups a validation summary must not average away.

A chip's class follows from its kind: an accelerator is an NPU when its vendor builds NPUs
(Huawei's Ascend) and a GPU otherwise (NVIDIA, AMD, Apple); wafer_mesh is `wafer`; cpu, pim,
mcu and fpga keep their names. A system takes its chip's class.
"""

from __future__ import annotations

from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System, load_hardware

HARDWARE_CLASSES = ("gpu", "npu", "cpu", "wafer", "pim", "mcu", "fpga")
NPU_VENDORS = ("Huawei",)
"""Accelerator vendors whose chips are NPUs (the vendor field's first word)."""
KIND_CLASSES = {"cpu": "cpu", "wafer_mesh": "wafer", "pim": "pim", "mcu": "mcu", "fpga": "fpga"}


def hardware_class(spec: Device | System) -> str:
    """The class of `spec`'s chip (module doc)."""
    chip = spec.device
    if chip.kind == "accelerator":
        return "npu" if chip.vendor.split()[0] in NPU_VENDORS else "gpu"
    return KIND_CLASSES[chip.kind]


def class_of(hardware: str) -> str:
    """The class of the hardware named `hardware`, or "unknown" if it does not load."""
    try:
        return hardware_class(load_hardware(hardware))
    except PerfsimError:
        return "unknown"


def check_class(name: str) -> str:
    """`name` if it is a hardware class; Raise PerfsimError naming the known ones otherwise."""
    if name not in HARDWARE_CLASSES:
        raise PerfsimError(f"hardware class '{name}' is not one of {', '.join(HARDWARE_CLASSES)}")
    return name

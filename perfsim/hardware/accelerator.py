"""GPUs and NPUs: matrix and vector units, HBM/LPDDR, caches, chip-to-chip links."""

from typing import Literal

from perfsim.hardware.common import Count, DeviceBase


class Accelerator(DeviceBase):
    """A GPU or NPU chip (A100, H100, MI300X, Ascend 910B, Apple GPUs).

    `cores` counts SMs / CUs / AI Cores. Raise ValueError if a field is missing or misspelled.
    """

    kind: Literal["accelerator"]
    cores: Count | None = None

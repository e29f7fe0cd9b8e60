"""A whole small network as one op: its layers' ops run one after another (an MCU runs them so).

`network network=resnet8 step=train dtype=fp16` is the forward pass, backward pass and SGD update of
ResNet8 on one sample (perfsim.models.mcu_training); `step=inference` the forward pass alone. FLOPs and
operands are the sum of its layers'; the MCU cost model prices each layer and adds the times.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from perfsim.errors import PerfsimError
from perfsim.ops import FormatName, OpBase, Operand, Size


class NetworkStep(OpBase):
    """One inference or training step of the network file `network` (a name in workloads/networks/ or a path)
    in `dtype` (default: the network's), on `cores` of the cluster's cores (default: all).

    Raise ValueError for an unknown or malformed network."""

    kind: Literal["network"] = "network"
    network: str
    step: Literal["inference", "train"] = "inference"
    dtype: FormatName | None = None
    cores: Size | None = None

    @model_validator(mode="after")
    def _loads(self) -> NetworkStep:
        try:
            self.layers()
        except PerfsimError as err:
            raise ValueError(str(err)) from None
        return self

    def layers(self) -> tuple[OpBase, ...]:
        """The ops of the step, in execution order."""
        from perfsim.models.mcu_training import training_ops
        from perfsim.models.network import network_ops

        forward = network_ops(self.network, self.dtype)
        return forward if self.step == "inference" else tuple(training_ops(forward))

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.layers())

    @property
    def macs(self) -> float:
        """Multiply-accumulates of the convolutions and matrix products (what MAC/cycle counts)."""
        return sum(op.flops / 2 for op in self.layers() if op.engine == "matrix" or hasattr(op, "macs"))

    def operands(self) -> list[Operand]:
        return [Operand(f"{op.label}.{o.name}", o.bytes, o.reads, o.writes, o.weight)
                for op in self.layers() for o in op.operands()]

    def work(self) -> list[tuple[Literal["matrix", "vector"], float]]:
        return [item for op in self.layers() for item in op.work()]

    @property
    def label(self) -> str:
        return self.name or f"{self.network}-{self.step}"

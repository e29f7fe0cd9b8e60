"""A whole small network as one op: its layers' ops run one after another (an MCU runs them so).

`network network=resnet8 step=train dtype=fp16` is the forward pass, backward pass and SGD update of
ResNet8 on one sample (perfsim.models.mcu_training); `step=inference` the forward pass alone. FLOPs and
operands are the sum of its layers'; the MCU cost model prices each layer and adds the times.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, model_validator

from perfsim.dtypes import resolve_dtype
from perfsim.errors import PerfsimError
from perfsim.ops import FormatName, OpBase, Operand, Size


def _mapping(value: Any) -> Any:
    """A plan given as text (an op string's `plan="{conv1: fp4}"`) read as a YAML mapping; else as given."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


class NetworkStep(OpBase):
    """One inference or training step of the network file `network` (a name in workloads/networks/ or a path)
    in `dtype` (default: the network's), on `cores` of the cluster's cores (default: all). `plan` gives some layers
    a format of their own (a per-layer dtype plan: `plan="{conv1: posit8_0, fc: fp4}"`).

    Raise ValueError for an unknown or malformed network, or a plan naming a layer it does not have."""

    kind: Literal["network"] = "network"
    network: str
    step: Literal["inference", "train"] = "inference"
    dtype: FormatName | None = None
    cores: Size | None = None
    plan: Annotated[dict[str, FormatName], BeforeValidator(_mapping)] = Field(default_factory=dict,
                                        description="layer name -> the format that layer runs in (others: dtype)")

    @model_validator(mode="after")
    def _loads(self) -> NetworkStep:
        try:
            self.layers()
        except PerfsimError as err:
            raise ValueError(str(err)) from None
        return self

    def forward(self) -> tuple[OpBase, ...]:
        """The forward pass's ops with the plan applied. Raise PerfsimError for a plan naming an unknown layer."""
        from perfsim.models.network import network_ops

        ops = network_ops(self.network, self.dtype)
        unknown = sorted(set(self.plan) - {op.name for op in ops})
        if unknown:
            raise PerfsimError(f"plan names {unknown}, which network {self.network} does not have")
        return tuple(op.model_copy(update={"dtype": self.plan[op.name]})
                     if op.name in self.plan and "dtype" in type(op).model_fields else op for op in ops)

    def layers(self) -> tuple[OpBase, ...]:
        """The ops of the step, in execution order."""
        from perfsim.models.mcu_training import training_ops

        forward = self.forward()
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
    def compute_dtype(self) -> str:
        """The step's format: `dtype`, else the network file's own (the format its layers run in)."""
        from perfsim.models.network import load_network

        return resolve_dtype(self.dtype or load_network(self.network).dtype).name

    @property
    def label(self) -> str:
        return self.name or f"{self.network}-{self.step}"

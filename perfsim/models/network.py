"""Small networks (CNNs, a tiny ViT) as a list of layers, each one op of the IR: the MCU workload format.

A network file (workloads/networks/<name>.yaml; kept out of workloads/ so the transformer model list does
not read it):

    kind: network
    name: resnet8
    description: ...
    source: ...
    layers:
      - {name: conv1, op: "conv2d in_channels=3 out_channels=16 height=32 width=32 kernel=3 padding=1"}
      - {name: add1, op: "elementwise elements=16384 inputs=2", inputs: [relu2, relu0]}

`inputs` names the layers whose outputs a layer reads (default: the previous layer; `input` is the
network's input). Every layer computes in the dtype the network is loaded with, so one file serves fp16,
fp32 and int8.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from perfsim.datadirs import shipped_dir
from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware.common import Name, Source, Spec
from perfsim.ops import FormatName, OpBase, parse_op
from perfsim.specfile import load_spec

NETWORK_DIR = shipped_dir("model") / "networks"
NETWORK_INPUT = "input"


class Layer(Spec):
    """One layer: an op string (as `estimate --op` takes it) and the layers whose outputs it reads."""

    name: Name
    op: str
    inputs: list[str] | None = None


class Network(Spec):
    """A network: named layers in execution order. Raise ValueError for a repeated name or an unknown input."""

    kind: Literal["network"]
    name: Name
    description: str
    source: Source
    dtype: FormatName = Field(description="the precision the network is deployed in, unless a caller gives one")
    layers: list[Layer] = Field(min_length=1)

    @model_validator(mode="after")
    def _wired(self) -> Network:
        seen = {NETWORK_INPUT}
        for layer in self.layers:
            if layer.name in seen:
                raise ValueError(f"layer name '{layer.name}' is used twice (or is the reserved '{NETWORK_INPUT}')")
            unknown = [i for i in layer.inputs or [] if i not in seen]
            if unknown:
                raise ValueError(f"layer '{layer.name}' reads {unknown}, which no earlier layer produces")
            seen.add(layer.name)
        return self

    def sources(self, index: int) -> list[str]:
        """The names of the tensors layer `index` reads."""
        layer = self.layers[index]
        if layer.inputs is not None:
            return layer.inputs
        return [self.layers[index - 1].name if index else NETWORK_INPUT]


def network_path(ref: str) -> Path:
    """The file of network `ref`: a path to a .yaml file, or a name in workloads/networks/."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        return Path(ref)
    path = NETWORK_DIR / f"{ref}.yaml"
    if not path.is_file():
        known = ", ".join(shipped_networks())
        raise PerfsimError(f"unknown network '{ref}' (known: {known}; or give a path to a .yaml file)")
    return path


def shipped_networks() -> list[str]:
    return sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))


@cache
def load_network(ref: str) -> Network:
    """The network `ref` names. Raise PerfsimError on any bad input."""
    return load_spec(network_path(ref), Network)


@cache
def network_ops(ref: str, dtype: str | None = None) -> tuple[OpBase, ...]:
    """The ops of network `ref` in order, each computing in `dtype` (the network's own when None), named by layer."""
    network = load_network(ref)
    fmt = resolve_format(dtype or network.dtype).name
    ops = []
    for layer in network.layers:
        op = parse_op(layer.op)
        update: dict[str, object] = {"name": layer.name}
        if "dtype" in type(op).model_fields:
            update["dtype"] = fmt
        ops.append(op.model_copy(update=update))
    return tuple(ops)


def output_bytes(op: OpBase) -> float:
    """Bytes of the tensor an op writes (its write-only operands)."""
    return sum(o.bytes for o in op.operands() if o.writes and not o.reads)


def weight_bytes(op: OpBase) -> float:
    return sum(o.bytes for o in op.operands() if o.weight)


def input_bytes(op: OpBase) -> float:
    """Bytes of the activations an op reads (read-only, non-weight operands)."""
    return sum(o.bytes for o in op.operands() if o.reads and not o.writes and not o.weight)

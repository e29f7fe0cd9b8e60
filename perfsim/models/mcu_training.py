"""One training step of a small network on one sample (batch 1), as PULP-TrainLib runs it: forward, then
backward layer by layer (weight gradient, input gradient), then an SGD update of every weight.

Backward ops and their counts (one multiply-add = 2 FLOP, as in perfsim.ops):
- Conv2d / Gemm input gradient (IG): as many MACs as the forward (each forward MAC x·w has one backward
  MAC dy·w); reads dy and the weights, writes dx. The first layer computes none (nothing upstream to train).
- Conv2d / Gemm weight gradient (WG): as many MACs as the forward (dw += dy·x); reads x and dy, writes dw.
- Elementwise (ReLU, residual add, pooling): dx = dy ⊙ f'(x) or the skip gradient's accumulation: one FLOP
  per element, reading dy and x (2 inputs), writing dx.
- SGD update: w ← w − lr·dw, 2 FLOP per weight, reading w and dw, writing w.
The data-layout passes of backprop (im2col of x and of dy, the weight transpose) are the cost model's
(perfsim.cost.mcu_kernels), not extra FLOPs.
"""

from __future__ import annotations

from typing import Literal

from perfsim.errors import PerfsimError
from perfsim.ops import Conv2d, Elementwise, Gemm, OpBase, Operand


class ConvGrad(OpBase):
    """A Conv2d's gradient with respect to its input (`wrt: input`) or its weights (`wrt: weight`)."""

    kind: Literal["conv2d_grad"] = "conv2d_grad"
    forward: Conv2d
    wrt: Literal["input", "weight"]

    @property
    def dtype(self) -> str:
        return self.forward.dtype

    @property
    def macs(self) -> int:
        return self.forward.macs

    @property
    def flops(self) -> float:
        return self.forward.flops

    def operands(self) -> list[Operand]:
        x, w, y = (o.bytes for o in self.forward.operands())
        if self.wrt == "input":
            return [Operand("dy", y), Operand("w", w, weight=True), Operand("dx", x, reads=0, writes=1)]
        return [Operand("x", x), Operand("dy", y), Operand("dw", w, reads=0, writes=1)]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return self.forward.engine


class GemmGrad(OpBase):
    """A Gemm's (a linear layer's) gradient with respect to its input A or its weights B."""

    kind: Literal["gemm_grad"] = "gemm_grad"
    forward: Gemm
    wrt: Literal["input", "weight"]

    @property
    def dtype(self) -> str:
        return self.forward.dtype

    @property
    def flops(self) -> float:
        return self.forward.flops

    def operands(self) -> list[Operand]:
        a, b, c = (o.bytes for o in self.forward.operands())
        if self.wrt == "input":
            return [Operand("dc", c), Operand("b", b, weight=True), Operand("da", a, reads=0, writes=1)]
        return [Operand("a", a), Operand("dc", c), Operand("db", b, reads=0, writes=1)]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix"


def parameters(op: OpBase) -> float:
    """Trainable parameters (elements) of a layer: its weight operands' elements."""
    if isinstance(op, Conv2d):
        return op.out_channels * (op.in_channels // op.groups) * op.kernel**2
    if isinstance(op, Gemm):
        return op.k * op.n
    return 0


def backward_ops(op: OpBase, first: bool) -> list[OpBase]:
    """The backward ops of one layer: weight gradient, then input gradient unless it is the `first` layer. Raise
    PerfsimError for a layer kind without a backward pass."""
    name = op.label
    if isinstance(op, Conv2d | Gemm):
        grad = ConvGrad if isinstance(op, Conv2d) else GemmGrad
        ops: list[OpBase] = [grad(forward=op, wrt="weight", name=f"{name}.wg")]  # type: ignore[arg-type]
        if not first:
            ops.append(grad(forward=op, wrt="input", name=f"{name}.ig"))  # type: ignore[arg-type]
        return ops
    if isinstance(op, Elementwise):
        return [] if first else [Elementwise(elements=op.elements, inputs=2, flops_per_element=1, dtype=op.dtype,
                                             name=f"{name}.bw")]
    raise PerfsimError(f"layer {op.label}: no backward pass for {op.kind} layers (training covers conv2d, gemm and "
                       "elementwise layers)")


def update_op(op: OpBase) -> Elementwise | None:
    """The SGD update of a layer's weights (None for a layer without weights)."""
    count = parameters(op)
    if not count:
        return None
    return Elementwise(elements=int(count), inputs=2, flops_per_element=2, dtype=getattr(op, "dtype", "fp32"),
                       name=f"{op.label}.sgd")


def training_ops(forward: tuple[OpBase, ...] | list[OpBase]) -> list[OpBase]:
    """One training step of the network whose forward ops are `forward`: forward, backward (reversed), SGD."""
    backward = [b for i, op in reversed(list(enumerate(forward))) for b in backward_ops(op, first=i == 0)]
    updates = [u for op in forward if (u := update_op(op)) is not None]
    return [*forward, *backward, *updates]

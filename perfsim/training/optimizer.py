"""Optimizers: bytes kept per parameter, bytes moved and FLOPs per parameter in one update.

Mixed precision (Micikevicius et al. 2018; ZeRO, Rajbhandari et al. 2020): the model runs on 16-bit weights
(`param_bytes` = 2) and 16-bit gradients; the optimizer keeps an fp32 master copy of the weights and its fp32
moments. Per parameter (Adam / AdamW, the ZeRO paper's K = 12):
  memory:  param 2 + grad 2 + master 4 + m 4 + v 4 = 16 bytes
  update:  read grad 2, master 4, m 4, v 4; write master 4, m 4, v 4 and the 16-bit param 2 = 28 bytes
  FLOPs:   m ← β1·m + (1−β1)·g (3); v ← β2·v + (1−β2)·g² (4); m̂ = m·c1, v̂ = v·c2 (2, the bias
           corrections precomputed per step); w ← w − lr·m̂ / (√v̂ + ε) (sqrt, add, div, mul, sub: 5) = 14;
           AdamW's decoupled decay w ← w − lr·λ·w adds 2 = 16.
SGD (no momentum), mixed precision: memory param 2 + grad 2 + master 4 = 8; update reads grad 2 and master 4,
writes master 4 and param 2 = 12 bytes; w ← w − lr·g is 2 FLOP. Without fp32 masters (`master: false`, as on an
MCU in fp16) the update reads and writes the 16-bit weights themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from perfsim.ops import OpBase, Operand, Size

MASTER_BYTES = 4  # fp32 master weights and moments


@dataclass(frozen=True)
class Optimizer:
    """`states` fp32 tensors per parameter besides the master copy, and `flops` per parameter per update."""

    name: str
    states: int
    flops: float


OPTIMIZERS = {"adamw": Optimizer("adamw", 2, 16.0), "adam": Optimizer("adam", 2, 14.0),
              "sgd": Optimizer("sgd", 0, 2.0)}


@dataclass(frozen=True)
class PerParameter:
    """Bytes per parameter: the 16-bit weight, its gradient, and the optimizer's fp32 master and states."""

    param: float
    grad: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.param + self.grad + self.optimizer


def bytes_per_parameter(optimizer: str, param_bytes: float = 2, grad_bytes: float = 2,
                        master: bool = True) -> PerParameter:
    """What each parameter keeps in memory under `optimizer` (module doc)."""
    states = OPTIMIZERS[optimizer].states
    return PerParameter(param_bytes, grad_bytes, MASTER_BYTES * (states + (1 if master else 0)))


class OptimizerStep(OpBase):
    """One optimizer update of `params` parameters (this chip's shard): streams through grads, masters, states."""

    kind: Literal["optimizer_step"] = "optimizer_step"
    params: Size
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    param_bytes: float = 2
    grad_bytes: float = 2
    master: bool = True

    @property
    def dtype(self) -> str:
        return "fp32"

    @property
    def flops(self) -> float:
        return OPTIMIZERS[self.optimizer].flops * self.params

    def operands(self) -> list[Operand]:
        n = self.params
        states = OPTIMIZERS[self.optimizer].states
        ops = [Operand("grad", n * self.grad_bytes)]
        if self.master:
            ops += [Operand("master", n * MASTER_BYTES, reads=1, writes=1),
                    Operand("param", n * self.param_bytes, reads=0, writes=1)]
        else:
            ops.append(Operand("param", n * self.param_bytes, reads=1, writes=1))
        return ops + [Operand(f"state{i}", n * MASTER_BYTES, reads=1, writes=1) for i in range(states)]


def update_traffic_per_parameter(optimizer: str, master: bool = True) -> float:
    """Bytes one update moves per parameter (module doc: 28 for Adam and AdamW, 12 for SGD)."""
    return OptimizerStep(params=1, optimizer=optimizer, master=master).bytes  # type: ignore[arg-type]


__all__ = ["OPTIMIZERS", "OptimizerStep", "PerParameter", "bytes_per_parameter", "update_traffic_per_parameter"]

"""Backward ops: for each forward op of the IR, the ops its backward pass runs (counts as in perfsim.ops).

- Gemm C[m, n] = A[m, k] · B[k, n]: input gradient dA = dC · Bᵀ (a GEMM m×k×n) and weight gradient
  dB = Aᵀ · dC (a GEMM k×n×m). Each has the forward's 2·m·n·k FLOP and its traffic: dgrad reads dC (m·n) and
  B (k·n) and writes dA (m·k); wgrad reads A (m·k) and dC (m·n) and writes dB (k·n) — the forward's three
  tensors, each once. Both are priced as GEMMs of their own (transposed) shapes.
- Attention (FlashAttention-2 backward, Dao 2023): scores are recomputed, not stored. Per query-key pair
  five matmuls of head_dim MACs (S = QKᵀ again, dV += Pᵀ·dO, dP = dO·Vᵀ, dQ += dS·K, dK += dSᵀ·Q): 2.5× the
  forward's two. Per pair ATTENTION_GRAD_VECTOR_FLOPS on the vector units: P = exp(S·scale − L) (mul, sub,
  exp) and dS = P ⊙ (dP − D) (sub, mul); per query row and head D = rowsum(dO ⊙ O), 2·head_dim FLOP.
  Traffic: reads Q, K, V, O, dO and the row log-sum-exp L (fp32), writes dQ, dK, dV.
- Norm: reads x and dy, writes dx; NORM_GRAD_FLOPS per element (the gain's gradient is a reduction over
  rows, folded in).
- Elementwise (activation, gated product, embedding gather): per input a gradient, reading dy and that input,
  writing its gradient: `inputs` × (read 2, write 1) elements, flops_per_element each (the embedding's
  backward is a scatter-add: 1 FLOP per element).
- MoE: an input-gradient and a weight-gradient pass, each with the forward's FLOPs and traffic (the same
  argument as a GEMM's, expert by expert), so both are the forward op under new names.
- Collectives: tensor-parallel all-reduces and expert all-to-alls have their conjugates in backward (Megatron's
  f/g operators: an all-reduce for each; dispatch and combine swap), the pipeline send returns the gradient:
  the same op under a new name.
- Conv2d: perfsim.models.mcu_training's input and weight gradients (im2col and transposes are the cost
  model's).
"""

from __future__ import annotations

from typing import Literal

from perfsim.errors import PerfsimError
from perfsim.ops import Attention, Collective, Conv2d, Elementwise, Gemm, MoE, Norm, OpBase, Operand, Softmax

ATTENTION_GRAD_MATMULS = 5  # QKᵀ recomputed, dV, dP, dQ, dK; the forward has two (QKᵀ, PV)
ATTENTION_GRAD_VECTOR_FLOPS = 5  # per score: P = exp(S·scale − L) (3), dS = P ⊙ (dP − D) (2)
NORM_GRAD_FLOPS = {"rmsnorm": 9, "layernorm": 13}
"""FLOP per element of dx (and the gain's gradient). rmsnorm: g·dy (1), x̂ = x·r (1), dgain += dy·x̂ (2), the row
dot c = Σ g·dy·x̂ (2), dx = r·(g·dy − x̂·c/n) (3); layernorm adds the mean term (sub, mul, add) and the bias gradient."""
LSE_BYTES = 4  # the forward's per-row log-sum-exp, kept in fp32 for the backward


class AttentionGrad(OpBase):
    """FlashAttention-2 backward of `forward` (module doc): recomputes the scores, writes dQ, dK, dV."""

    kind: Literal["attention_grad"] = "attention_grad"
    forward: Attention

    @property
    def dtype(self) -> str:
        return self.forward.dtype

    @property
    def matmul_flops(self) -> float:
        return ATTENTION_GRAD_MATMULS / 2 * self.forward.matmul_flops

    @property
    def vector_flops(self) -> float:
        f = self.forward
        rows = f.batch * f.heads * f.q_len
        return ATTENTION_GRAD_VECTOR_FLOPS * f.scores + 2.0 * rows * f.head_dim

    @property
    def flops(self) -> float:
        return self.matmul_flops + self.vector_flops

    def work(self) -> list[tuple[Literal["matrix", "vector"], float]]:
        return [("matrix", self.matmul_flops), ("vector", self.vector_flops)]

    def operands(self) -> list[Operand]:
        f = self.forward
        q, k, v, o = (op.bytes for op in f.operands()[:4])
        lse = f.batch * f.heads * f.q_len * LSE_BYTES
        return [Operand("q", q), Operand("k", k), Operand("v", v), Operand("o", o), Operand("do", o),
                Operand("lse", lse), Operand("dq", q, reads=0, writes=1), Operand("dk", k, reads=0, writes=1),
                Operand("dv", v, reads=0, writes=1)]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix"


def gemm_grads(op: Gemm) -> list[Gemm]:
    """dA = dC·Bᵀ (m×k from inner n) and dB = Aᵀ·dC (k×n from inner m), in the forward's dtypes."""
    act = op.dtype
    dgrad = Gemm(name=f"{op.label}.dgrad", m=op.m, n=op.k, k=op.n, batch=op.batch, dtype=act,
                 weight_dtype=op.weight_dtype, weight_shared=op.weight_shared)
    wgrad = Gemm(name=f"{op.label}.wgrad", m=op.k, n=op.n, k=op.m, batch=op.batch, dtype=act,
                 weight_shared=op.weight_shared)
    return [dgrad, wgrad]


def backward_ops(op: OpBase) -> list[OpBase]:
    """The backward ops of forward op `op` (module doc). Raise PerfsimError for an op without a backward here."""
    name = op.label
    if isinstance(op, Gemm):
        return list(gemm_grads(op))
    if isinstance(op, Attention):
        if not op.fused:
            raise PerfsimError("training prices FlashAttention's backward; use fused attention")
        return [AttentionGrad(forward=op, name=f"{name}.grad")]
    if isinstance(op, MoE):
        return [op.model_copy(update={"name": f"{name}.dgrad"}), op.model_copy(update={"name": f"{name}.wgrad"})]
    if isinstance(op, Norm):
        return [Elementwise(name=f"{name}.grad", elements=op.rows * op.cols, inputs=2,
                            flops_per_element=NORM_GRAD_FLOPS[op.norm], dtype=op.dtype)]
    if isinstance(op, Elementwise):
        flops = op.flops_per_element or 1.0  # a gather's backward is a scatter-add
        return [Elementwise(name=f"{name}.grad", elements=op.elements * op.inputs, inputs=2,
                            flops_per_element=flops, dtype=op.dtype)]
    if isinstance(op, Softmax):  # dx = y ⊙ (dy − Σ y·dy): reads y and dy, writes dx; 4 FLOP per element
        return [Elementwise(name=f"{name}.grad", elements=op.elements, inputs=2, flops_per_element=4,
                            dtype=op.dtype)]
    if isinstance(op, Collective):
        return [op.model_copy(update={"name": f"{name}.grad"})]
    if isinstance(op, Conv2d):
        from perfsim.models.mcu_training import backward_ops as conv_backward

        return conv_backward(op, first=False)
    raise PerfsimError(f"no backward pass for {op.kind} ops")

"""The op IR: what an op computes (FLOPs) and which operands it reads and writes (bytes).

Ops know nothing of hardware. Each lists its operands; the cost model decides which
memory level serves each one (cold: main memory; warm: a cache it fits in). Counting
conventions, checked by the numpy reference core:
- one multiply-add is 2 FLOP; exp, max, compare, divide count 1 FLOP each;
- operand bytes are compulsory traffic: each operand read (or written) once per pass
  that touches it, at its storage format's bits per element.
"""

from __future__ import annotations

import functools
import shlex
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, model_validator

from perfsim.dtypes import resolve_dtype, resolve_format
from perfsim.errors import PerfsimError
from perfsim.hardware.common import Spec
from perfsim.specfile import validate

MAX_INT = 2**53
"""Largest integer a size may take: every integer up to it is exact as a float, so counts never overflow."""
Size = Annotated[int, Field(gt=0, le=MAX_INT)]
FormatName = Annotated[str, AfterValidator(lambda name: resolve_format(name).name),
                       Field(description="a dtype (bf16, int8, ...) or quantisation scheme (q4_0, mxfp4)")]

SOFTMAX_FLOPS = {"three_pass_recompute": 7, "three_pass_reload": 5, "two_pass": 7, "single_pass": 5}
"""FLOP per element: recompute = max + (sub, exp, add) + (sub, exp, mul); reload = max + (sub, exp, add)
+ mul; two-pass = (exponent, sub, exp, scale-add) + (sub, exp, mul); single-pass = max, sub, exp, add, mul."""
SOFTMAX_PASSES = {  # (element reads of x or y, element writes of y)
    "three_pass_recompute": (3, 1),
    "three_pass_reload": (3, 2),
    "two_pass": (2, 1),
    "single_pass": (1, 1),
}
NORM_FLOPS = {"rmsnorm": 4, "layernorm": 7}
"""FLOP per element: rmsnorm = square, add, scale, gain; layernorm = add, sub, square, add, scale, gain, bias."""
ACTIVATION_FLOPS = 4
"""FLOP per element of SiLU or GELU (≈ exp, add, divide, multiply); a gated activation's multiply adds 1."""
ROPE_FLOPS = 3.0
"""FLOP per rotated element: x·cos − y·sin (two multiplies, a subtract), and y·cos + x·sin for its partner."""


@dataclass(frozen=True)
class Operand:
    """One tensor an op touches: `reads` and `writes` of `bytes` each; `weight` operands are parameters."""

    name: str
    bytes: float
    reads: int = 1
    writes: int = 0
    weight: bool = False

    @property
    def traffic(self) -> float:
        return self.bytes * (self.reads + self.writes)


def _bytes(elements: float, fmt: str) -> float:
    return elements * resolve_format(fmt).bits_per_element / 8


class OpBase(Spec):
    """Common interface: `flops`, `operands()`, `bytes`, `intensity`, and the dtype compute runs in."""

    name: str = ""

    def operands(self) -> list[Operand]:
        raise NotImplementedError

    @property
    def flops(self) -> float:
        raise NotImplementedError

    @property
    def bytes(self) -> float:
        return sum(o.traffic for o in self.operands())

    @property
    def intensity(self) -> float:
        """FLOP per byte of compulsory traffic."""
        return self.flops / self.bytes

    @property
    def compute_dtype(self) -> str:
        return resolve_dtype(getattr(self, "dtype", "fp32")).name

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "vector"

    def work(self) -> list[tuple[Literal["matrix", "vector"], float]]:
        """FLOPs by the kind of unit that runs them."""
        return [(self.engine, self.flops)]

    @property
    def label(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class Gemm(OpBase):
    """C[batch, m, n] = A[batch, m, k] @ B[batch, k, n]; B stored in `weight_dtype` (default `dtype`).

    `weight_shared: true` reads B once for the whole batch (one weight matrix, many rows).
    """

    kind: Literal["gemm"] = "gemm"
    m: Size
    n: Size
    k: Size
    batch: Size = 1
    dtype: FormatName = "bf16"
    acc_dtype: FormatName = "fp32"
    out_dtype: FormatName | None = None
    weight_dtype: FormatName | None = None
    weight_shared: bool = False

    @property
    def flops(self) -> float:
        return 2.0 * self.batch * self.m * self.n * self.k

    def operands(self) -> list[Operand]:
        b_copies = 1 if self.weight_shared else self.batch
        return [
            Operand("a", _bytes(self.batch * self.m * self.k, self.dtype)),
            Operand("b", _bytes(b_copies * self.k * self.n, self.weight_dtype or self.dtype), weight=True),
            Operand("c", _bytes(self.batch * self.m * self.n, self.out_dtype or self.dtype), reads=0, writes=1),
        ]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix"


class Attention(OpBase):
    """Scaled dot-product attention for `batch` sequences: `q_len` queries over `kv_len` keys.

    heads/kv_heads give MHA (equal), GQA (kv_heads divides heads) or MQA (kv_heads = 1).
    Decode is q_len = 1 with kv_len the context. Causal masking keeps, for query i of the
    last q_len positions, the kv_len − q_len + i + 1 keys up to it. `fused`: scores stay on
    chip (FlashAttention); unfused writes scores S and probabilities P to memory and reads
    them back. Softmax FLOPs use `softmax` (three_pass_reload when unfused).
    """

    kind: Literal["attention"] = "attention"
    batch: Size = 1
    heads: Size
    kv_heads: Size | None = None
    head_dim: Size = 128
    q_len: Size
    kv_len: Size
    causal: bool = True
    fused: bool = True
    dtype: FormatName = "bf16"
    kv_dtype: FormatName | None = None

    @model_validator(mode="after")
    def _shapes(self) -> Attention:
        if self.heads % self.groups_divisor:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.groups_divisor})")
        if self.q_len > self.kv_len:
            raise ValueError(f"q_len ({self.q_len}) cannot exceed kv_len ({self.kv_len})")
        return self

    @property
    def groups_divisor(self) -> int:
        return self.kv_heads or self.heads

    @property
    def scores(self) -> float:
        """Query-key pairs computed, all heads and sequences."""
        q, kv = self.q_len, self.kv_len
        pairs = q * (kv - q) + q * (q + 1) / 2 if self.causal else q * kv
        return self.batch * self.heads * pairs

    @property
    def matmul_flops(self) -> float:
        return 2 * 2.0 * self.scores * self.head_dim  # QK^T and PV

    @property
    def softmax_flops(self) -> float:
        return SOFTMAX_FLOPS["three_pass_reload"] * self.scores

    @property
    def flops(self) -> float:
        return self.matmul_flops + self.softmax_flops

    def work(self) -> list[tuple[Literal["matrix", "vector"], float]]:
        return [("matrix", self.matmul_flops), ("vector", self.softmax_flops)]

    def operands(self) -> list[Operand]:
        b, d = self.batch, self.head_dim
        kv_fmt = self.kv_dtype or self.dtype
        ops = [
            Operand("q", _bytes(b * self.heads * self.q_len * d, self.dtype)),
            Operand("k", _bytes(b * self.groups_divisor * self.kv_len * d, kv_fmt)),
            Operand("v", _bytes(b * self.groups_divisor * self.kv_len * d, kv_fmt)),
            Operand("o", _bytes(b * self.heads * self.q_len * d, self.dtype), reads=0, writes=1),
        ]
        if not self.fused:
            scores = _bytes(self.scores, self.dtype)
            ops += [Operand("s", scores, reads=1, writes=1), Operand("p", scores, reads=1, writes=1)]
        return ops

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix"


class Softmax(OpBase):
    """Row softmax of a [rows, cols] tensor, by one of three algorithms (arXiv 2001.04438).

    three_pass_recompute reads x three times and writes y once; three_pass_reload reads
    x twice, writes exp(x − max) to y, and reads and rewrites y; two_pass carries the
    running sum as (mantissa, exponent) pairs, so it reads x twice and writes y once;
    single_pass holds each row on chip (a GPU kernel whose row fits its registers or shared
    memory, as MLX's does for rows up to 4096), reading x once and writing y once.
    `write_allocate`: each written line is first read into cache (a normal store on x86),
    adding one read per write.
    """

    kind: Literal["softmax"] = "softmax"
    rows: Size
    cols: Size
    dtype: FormatName = "fp32"
    variant: Literal["three_pass_recompute", "three_pass_reload", "two_pass", "single_pass"] = \
        "three_pass_recompute"
    write_allocate: bool = True

    @property
    def elements(self) -> int:
        return self.rows * self.cols

    @property
    def flops(self) -> float:
        return float(SOFTMAX_FLOPS[self.variant] * self.elements)

    def operands(self) -> list[Operand]:
        reads, writes = SOFTMAX_PASSES[self.variant]
        size = _bytes(self.elements, self.dtype)
        x_reads = reads if self.variant != "three_pass_reload" else 2
        y_reads = (reads - x_reads) + (writes if self.write_allocate else 0)
        return [Operand("x", size, reads=x_reads), Operand("y", size, reads=y_reads, writes=writes)]


def check_routing(experts: int, top_k: int, groups: int) -> None:
    """Raise ValueError unless `experts` and `top_k` split evenly into `groups` and top_k ≤ experts."""
    if experts % groups or top_k % groups:
        raise ValueError(f"experts ({experts}) and top_k ({top_k}) must divide into groups ({groups})")
    if top_k > experts:
        raise ValueError(f"top_k ({top_k}) cannot exceed experts ({experts})")


class MoE(OpBase):
    """A mixture-of-experts FFN layer over `tokens` tokens (routed experts + shared experts).

    Routing: `experts` split into `groups` (MoGE: top_k / groups experts chosen per group),
    each token picks `top_k` routed experts and uses all `shared_experts`. Each expert is a
    gated FFN (`gated`: three matrices hidden×ffn, as SwiGLU) of size `expert_ffn`.
    Weight traffic counts the expected number of distinct experts touched,
    E·(1 − (1 − k/E)^T) per group. `imbalance` (≥ 1) is the busiest expert-parallel
    rank's load over the mean; the cost model stretches routed compute by it.

    With `ep` > 1 or `expert_tp` > 1 the op is one chip's share: experts / ep experts,
    each split expert_tp ways, receiving tokens · top_k / ep token-expert pairs.
    """

    kind: Literal["moe"] = "moe"
    tokens: Size
    hidden: Size
    expert_ffn: Size
    experts: Size
    top_k: Size
    groups: Size = 1
    shared_experts: int = Field(0, ge=0, le=MAX_INT)
    shared_ffn: Size | None = None
    gated: bool = True
    imbalance: float = Field(1.0, ge=1.0)
    ep: Size = 1
    expert_tp: Size = 1
    dtype: FormatName = "bf16"
    weight_dtype: FormatName | None = None

    @model_validator(mode="after")
    def _routing(self) -> MoE:
        check_routing(self.experts, self.top_k, self.groups)
        if self.experts % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide experts ({self.experts})")
        if self.expert_ffn % self.expert_tp:
            raise ValueError(f"expert_tp ({self.expert_tp}) must divide expert_ffn ({self.expert_ffn})")
        return self

    @property
    def shards(self) -> int:
        return self.ep * self.expert_tp

    @property
    def matrices(self) -> int:
        return 3 if self.gated else 2

    @property
    def expert_params(self) -> int:
        return self.matrices * self.hidden * self.expert_ffn

    @property
    def experts_touched(self) -> float:
        """Expected distinct routed experts used by `tokens` tokens under uniform routing."""
        per_group, k_per_group = self.experts // self.groups, self.top_k // self.groups
        return self.groups * per_group * (1 - (1 - k_per_group / per_group) ** self.tokens)

    @property
    def shared_params(self) -> int:
        return self.shared_experts * self.matrices * self.hidden * (self.shared_ffn or self.expert_ffn)

    @property
    def routed_flops(self) -> float:
        """This chip's routed-expert FLOPs (all chips' when unsharded)."""
        return 2.0 * self.tokens * self.top_k * self.expert_params / self.shards

    @property
    def flops(self) -> float:
        router = 2.0 * self.tokens * self.hidden * self.experts / self.shards
        return self.routed_flops + 2.0 * self.tokens * self.shared_params / self.shards + router

    def operands(self) -> list[Operand]:
        weights = self.weight_dtype or self.dtype
        rows = self.tokens * self.top_k / self.ep if self.shards > 1 else self.tokens
        return [
            Operand("x", _bytes(rows * self.hidden, self.dtype)),
            Operand("experts", _bytes(self.experts_touched / self.ep * self.expert_params / self.expert_tp, weights),
                    weight=True),
            Operand("shared", _bytes(self.shared_params / self.shards, weights), weight=True),
            Operand("router", _bytes(self.hidden * self.experts, self.dtype), weight=True),
            Operand("y", _bytes(rows * self.hidden, self.dtype), reads=0, writes=1),
        ]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix"


def routing_imbalance(expert_load: list[int] | tuple[int, ...], ep: int) -> float:
    """MoE.imbalance from a routing sample: the busiest of `ep` ranks' token-expert pairs over the mean.

    Experts are placed on ranks in contiguous blocks of len(expert_load) / ep, as the trace places them.
    """
    if len(expert_load) % ep:
        raise PerfsimError(f"ep ({ep}) must divide the {len(expert_load)} experts")
    block = len(expert_load) // ep
    loads = [sum(expert_load[r * block:(r + 1) * block]) for r in range(ep)]
    mean = sum(loads) / ep
    return max(loads) / mean if mean else 1.0


class LutGemm(OpBase):
    """T-MAC table-lookup GEMM: Y[m, n] = X[m, k] @ W[k, n] with `weight_bits`-bit weights.

    W is split into `weight_bits` one-bit planes. For each group of `group_size` (g)
    activations a table of 2^g partial sums is built once per row of X, then every
    (plane, group, column) looks up one entry and adds it: m·n·(k/g)·bits lookups.
    Tables are `table_dtype` (int8 in T-MAC's fast path); `flops` reports the dense
    GEMM's 2·m·n·k so rooflines compare like with like. `simd_ops_per_table_lookup` is the
    kernel's instruction mix per lookup instruction: T-MAC's NEON kernel
    (tbl_g4_int8_float_update_impl with its widening adder) spends, per 16 bytes of packed
    indices, one shift, one mask, two TBL and four widening adds: 8 SIMD instructions for 2
    TBL, 4 per lookup instruction.
    """

    kind: Literal["lut_gemm"] = "lut_gemm"
    m: Size
    n: Size
    k: Size
    weight_dtype: FormatName = "int4"
    group_size: Size = 4
    table_dtype: FormatName = "int8"
    dtype: FormatName = "fp16"
    simd_ops_per_table_lookup: float = Field(4.0, gt=0)

    @model_validator(mode="after")
    def _groups(self) -> LutGemm:
        if self.k % self.group_size:
            raise ValueError(f"k ({self.k}) must be a multiple of group_size ({self.group_size})")
        return self

    @property
    def weight_bits(self) -> int:
        fmt = resolve_format(self.weight_dtype)
        return fmt.storage_bits if fmt.name != "ternary" else 2

    @property
    def lookups(self) -> float:
        return float(self.m * self.n * (self.k // self.group_size) * self.weight_bits)

    @property
    def table_build_adds(self) -> float:
        return float(self.m * (self.k // self.group_size) * 2**self.group_size)

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    def operands(self) -> list[Operand]:
        return [
            Operand("x", _bytes(self.m * self.k, self.dtype)),
            Operand("w", _bytes(self.k * self.n, self.weight_dtype), weight=True),
            Operand("y", _bytes(self.m * self.n, self.dtype), reads=0, writes=1),
        ]

    @property
    def compute_dtype(self) -> str:
        return resolve_dtype(self.table_dtype).name


class Conv2d(OpBase):
    """2-D convolution, NCHW; `groups = in_channels` is depthwise."""

    kind: Literal["conv2d"] = "conv2d"
    batch: Size = 1
    in_channels: Size
    out_channels: Size
    height: Size
    width: Size
    kernel: Size = 3
    stride: Size = 1
    padding: int = Field(0, ge=0, le=MAX_INT)
    groups: Size = 1
    dtype: FormatName = "fp16"

    @model_validator(mode="after")
    def _shapes(self) -> Conv2d:
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"channels ({self.in_channels}→{self.out_channels}) must divide into "
                             f"groups ({self.groups})")
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError("kernel larger than the padded input")
        return self

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        per_output = (self.in_channels // self.groups) * self.kernel**2
        return self.batch * self.out_channels * self.out_height * self.out_width * per_output

    @property
    def flops(self) -> float:
        return 2.0 * self.macs

    def operands(self) -> list[Operand]:
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel**2
        return [
            Operand("x", _bytes(self.batch * self.in_channels * self.height * self.width, self.dtype)),
            Operand("w", _bytes(weights, self.dtype), weight=True),
            Operand("y", _bytes(self.batch * self.out_channels * self.out_height * self.out_width, self.dtype),
                    reads=0, writes=1),
        ]

    @property
    def engine(self) -> Literal["matrix", "vector"]:
        return "matrix" if self.groups == 1 else "vector"


class Elementwise(OpBase):
    """`elements` outputs, each from `inputs` input elements with `flops_per_element` FLOP (add, GELU, ...)."""

    kind: Literal["elementwise"] = "elementwise"
    elements: Size
    inputs: Size = 1
    flops_per_element: float = Field(1.0, ge=0)
    dtype: FormatName = "bf16"

    @property
    def flops(self) -> float:
        return self.flops_per_element * self.elements

    def operands(self) -> list[Operand]:
        size = _bytes(self.elements, self.dtype)
        return [Operand(f"x{i}", size) for i in range(self.inputs)] + [Operand("y", size, reads=0, writes=1)]


class Norm(OpBase):
    """RMSNorm or LayerNorm over the last axis of [rows, cols], with a learned gain (and bias).

    `residual` fuses the block's residual add into the norm (1 more FLOP per element, the residual read):
    `pre_norm` as vLLM's fused_add_rms_norm (csrc/layernorm_kernels.cu: z = x + residual, residual ← z,
    y = norm(z)) also writes the sum back as the new residual stream; `post_norm` (BERT: y = LayerNorm(x +
    residual), fused in NVIDIA/FasterTransformer's BERT as invokeAddBiasResidualLayerNorm,
    src/fastertransformer/kernels/layernorm_kernels.cu: out = LN(out + residual + bias)) writes y only.
    """

    kind: Literal["norm"] = "norm"
    rows: Size
    cols: Size
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    residual: Literal["none", "pre_norm", "post_norm"] = "none"
    dtype: FormatName = "bf16"

    @property
    def flops(self) -> float:
        return float((NORM_FLOPS[self.norm] + (self.residual != "none")) * self.rows * self.cols)

    def operands(self) -> list[Operand]:
        size = _bytes(self.rows * self.cols, self.dtype)
        params = (1 if self.norm == "rmsnorm" else 2) * _bytes(self.cols, self.dtype)
        ops = [Operand("x", size), Operand("gain", params, weight=True), Operand("y", size, reads=0, writes=1)]
        if self.residual != "none":
            ops.append(Operand("residual", size, writes=int(self.residual == "pre_norm")))
        return ops


class ShapedElementwise(Elementwise):
    """An Elementwise whose `elements` and `flops_per_element` follow from its own shape fields (_elementwise_view):
    a copy with an updated shape is validated afresh, so its derived fields follow it."""

    def model_copy(self, *, update: typing.Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        if not update:
            return super().model_copy(deep=deep)
        shape = self.model_dump(exclude={"elements", "flops_per_element", "inputs"})
        return type(self).model_validate({**shape, **update})


class Rope(ShapedElementwise):
    """Rotary position embedding of `tokens` tokens' `heads` query and `kv_heads` key heads, in place.

    As vLLM's rotary_embedding_kernel (csrc/pos_encoding_kernels.cu): per token it reads the position's
    cos_sin_cache row (rotary_dim / 2 cos + rotary_dim / 2 sin values, in `dtype`), and rotates each pair
    (x, y) of the first `rotary_dim` (default head_dim) dims of every head: x·cos − y·sin and y·cos + x·sin,
    ROPE_FLOPS per element. The rotated elements are read and written once; the rest of each head is untouched.
    `elements` and `flops_per_element` are derived from the shape (the elementwise view other cost models price).
    """

    kind: Literal["rope"] = "rope"  # type: ignore[assignment]
    elements: Size = Field(1, description="derived: tokens × (heads + kv_heads) × rotary_dim")
    tokens: Size
    heads: Size
    kv_heads: Size
    head_dim: Size = 128
    rotary_dim: Size | None = None

    @model_validator(mode="after")
    def _shape(self) -> Rope:
        if self.rotary_dim is not None and (self.rotary_dim > self.head_dim or self.rotary_dim % 2):
            raise ValueError(f"rotary_dim ({self.rotary_dim}) must be even and at most head_dim ({self.head_dim})")
        if self.rotated % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even: RoPE rotates pairs of dims (or give an even "
                             "rotary_dim)")
        return _elementwise_view(self, self.tokens * (self.heads + self.kv_heads) * self.rotated, ROPE_FLOPS)

    @property
    def rotated(self) -> int:
        return self.rotary_dim or self.head_dim

    def operands(self) -> list[Operand]:
        table = _bytes(self.tokens * self.rotated, self.dtype)  # one cos_sin_cache row per token
        return [Operand("qk", _bytes(self.elements, self.dtype), writes=1), Operand("cos_sin", table)]


class KvAppend(ShapedElementwise):
    """Writing `tokens` new tokens' keys and values (`kv_heads` × `head_dim` each) into the KV cache.

    As vLLM's reshape_and_cache_flash (csrc/cache_kernels.cu): K and V are read in `dtype` and stored in
    `kv_dtype` at each token's cache slot; where the formats differ (fp8) each element is scaled on the way
    (scaled_convert: 1 FLOP per element), else copied (0 FLOP). `elements` (2 · tokens · kv_heads · head_dim)
    and `flops_per_element` are derived.
    """

    kind: Literal["kv_append"] = "kv_append"  # type: ignore[assignment]
    elements: Size = Field(1, description="derived: 2 × tokens × kv_heads × head_dim (keys and values)")
    tokens: Size
    kv_heads: Size
    head_dim: Size = 128
    kv_dtype: FormatName | None = None

    @model_validator(mode="after")
    def _shape(self) -> KvAppend:
        converts = (self.kv_dtype or self.dtype) != self.dtype
        return _elementwise_view(self, 2 * self.tokens * self.kv_heads * self.head_dim, float(converts))

    def operands(self) -> list[Operand]:
        return [Operand("kv", _bytes(self.elements, self.dtype)),
                Operand("cache", _bytes(self.elements, self.kv_dtype or self.dtype), reads=0, writes=1)]


def _elementwise_view(op: Rope | KvAppend, elements: int, flops_per_element: float) -> Any:
    """`op` with the Elementwise fields its shape fixes set; Raise ValueError where one was given otherwise (given
    equal, as in a dumped op read back, it is accepted)."""
    derived = {"elements": elements, "flops_per_element": flops_per_element,
               "inputs": type(op).model_fields["inputs"].default}
    wrong = sorted(name for name in derived if name in op.model_fields_set and getattr(op, name) != derived[name])
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: derived from the shape, not given")
    if elements > MAX_INT:
        raise ValueError(f"elements ({elements}) exceeds {MAX_INT}")
    object.__setattr__(op, "elements", elements)  # frozen: set once, here, before anyone hashes the op
    object.__setattr__(op, "flops_per_element", flops_per_element)
    return op


class Reduce(OpBase):
    """A sum or max over the last axis of [rows, cols]: one output per row.

    Each row takes cols − 1 adds (or compares), so FLOPs = rows·cols − rows; x is read once and the
    rows outputs written once.
    """

    kind: Literal["reduce"] = "reduce"
    rows: Size
    cols: Size
    op: Literal["sum", "max"] = "sum"
    dtype: FormatName = "bf16"

    @property
    def flops(self) -> float:
        return float(self.rows * self.cols - self.rows)

    def operands(self) -> list[Operand]:
        return [Operand("x", _bytes(self.rows * self.cols, self.dtype)),
                Operand("y", _bytes(self.rows, self.dtype), reads=0, writes=1)]


COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "broadcast", "all_to_all", "send")


ALGORITHMS: dict[str, tuple[str, ...]] = {  # the algorithms a library offers per collective kind
    "all_reduce": ("ring", "tree", "nvls"),
    "broadcast": ("ring", "tree"),
    "reduce_scatter": ("ring",),
    "all_gather": ("ring",),
    "all_to_all": ("direct",),
    "send": ("direct",),
}
PROTOCOLS = ("ll", "ll128", "simple")


class Collective(OpBase):
    """A collective over `group` chips (default: all of the system's chips), or a point-to-point `send`.

    `bytes` is nccl-tests' size: the message for all_reduce, broadcast and send; the whole
    per-rank buffer of `group` chunks for all_gather, reduce_scatter and all_to_all.
    The members are chips 0, stride, 2·stride, … of a block (`stride`: chips between
    consecutive members; a pipeline send between stages tp·dp chips apart has group 2,
    stride tp·dp). A send has group 2: one sender, one receiver.
    `algorithm`: auto (the library's choice: the fastest predicted), or one of ALGORITHMS[kind]:
    ring, tree (NCCL's double binary tree), nvls (in-switch reduction), direct (all_to_all, send).
    `protocol`: auto, ll, ll128 or simple (NCCL's wire protocols; nvls runs simple only).
    Raise ValueError for group 1 (no peer: nothing to communicate), a send whose group
    is not 2, an algorithm the kind does not offer, or nvls with a protocol other than simple.
    """

    kind: Literal["all_reduce", "reduce_scatter", "all_gather", "broadcast", "all_to_all", "send"]
    size_bytes: Annotated[float, Field(gt=0, allow_inf_nan=False, alias="bytes")]
    group: Size | None = None
    stride: Size = 1
    algorithm: Literal["auto", "ring", "tree", "nvls", "direct"] = "auto"
    protocol: Literal["auto", "ll", "ll128", "simple"] = "auto"
    dtype: FormatName = "bf16"

    @model_validator(mode="after")
    def _members(self) -> Collective:
        if self.group == 1:
            raise ValueError("group 1 has no peer to communicate with; a collective needs group ≥ 2")
        if self.kind == "send" and self.group != 2:
            raise ValueError(f"a send has group=2 (one sender, one receiver), got group={self.group}")
        if self.algorithm != "auto" and self.algorithm not in ALGORITHMS[self.kind]:
            kinds = [k for k, algorithms in ALGORITHMS.items() if self.algorithm in algorithms]
            raise ValueError(f"algorithm '{self.algorithm}' applies to {' and '.join(kinds)}, not {self.kind}")
        if self.algorithm == "nvls" and self.protocol not in ("auto", "simple"):
            raise ValueError(f"algorithm 'nvls' runs protocol 'simple' only, not '{self.protocol}'")
        return self

    model_config = Spec.model_config | {"populate_by_name": True}

    @property
    def flops(self) -> float:
        reduces = self.kind in ("all_reduce", "reduce_scatter")
        return self.size_bytes / resolve_format(self.dtype).bytes_per_element if reduces else 0.0

    def operands(self) -> list[Operand]:
        return [Operand("buffer", self.size_bytes, reads=1, writes=1)]

    def bus_factor(self, n: int) -> float:
        """nccl-tests: bus bandwidth = algorithm bandwidth × this factor (sendrecv: 1)."""
        if self.kind == "all_reduce":
            return 2 * (n - 1) / n
        return 1.0 if self.kind in ("broadcast", "send") else (n - 1) / n


Op = Annotated[Gemm | Attention | Softmax | MoE | LutGemm | Conv2d | Elementwise | Rope | KvAppend | Norm | Reduce
               | Collective,
               Field(discriminator="kind")]


@functools.cache
def op_registry() -> tuple[dict[str, type[OpBase]], Any]:
    """Every kind an op string may name — the IR's, the classic-ML kernels' (perfsim.ops_classic) and whole
    networks' (perfsim.ops_network) — and the discriminated union of them all. Those modules build on OpBase, so
    they are imported here on first use rather than at the top."""
    from perfsim.ops_classic import CLASSIC_OPS
    from perfsim.ops_network import NetworkStep

    classes = (*typing.get_args(typing.get_args(Op)[0]), *CLASSIC_OPS, NetworkStep)
    kinds = {kind: cls for cls in classes for kind in typing.get_args(cls.model_fields["kind"].annotation)}
    return kinds, Annotated[typing.Union[classes], Field(discriminator="kind")]  # noqa: UP007


def _is_text(annotation: Any) -> bool:
    """Whether a field of this type takes a string (str, a Literal of strings, or a union with one)."""
    if annotation is str:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(arg, str) for arg in args)
    return any(_is_text(arg) for arg in args)


def _typed(cls: type[OpBase], key: str, text: str) -> Any:
    """`text` as field `key` of `cls` takes it: raw for text fields; else the YAML scalar (4096, false,
    1.5) with numerals YAML 1.1 leaves as strings (1e9, inf) read as floats, for the validator to judge."""
    field = next((f for name, f in cls.model_fields.items() if key in (name, f.alias)), None)
    if field is None or _is_text(field.annotation):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_op(text: str) -> OpBase:
    """Parse `KIND key=value ...` (the IR's own field names) into an op; Raise PerfsimError if bad."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise PerfsimError(f"op '{text}': {err}") from None
    classes, union = op_registry()
    if not words or words[0] not in classes:
        got = words[0] if words else ""
        raise PerfsimError(f"op '{text}': unknown kind '{got}' (known: {', '.join(classes)})")
    cls = classes[words[0]]
    fields: dict[str, Any] = {"kind": words[0]}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise PerfsimError(f"op '{text}': '{word}' is not key=value")
        fields[key] = _typed(cls, key, value)
    return validate(union, fields, f"op '{text}'")

"""Model specs (workloads/*.yaml): the shape of a transformer, dense or mixture-of-experts.

Per-layer lists are allowed where a model varies by layer (OpenELM's layer-wise
scaling of heads and FFN width). Parameter counts follow the Hugging Face
checkpoints: input embedding and LM head counted separately unless tied.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, StrictBool, model_validator

from perfsim.dtypes import resolve_format
from perfsim.hardware.common import Count, Name, Natural, Source, Spec
from perfsim.ops import check_routing

PerLayer = Count | list[Count]
MAX_LAYERS = 10_000
"""More layers than any model has (the deepest are a few hundred); every per-layer loop stays short."""
Layers = Annotated[int, Field(gt=0, le=MAX_LAYERS, strict=True)]
FormatName = Annotated[str, Field(description="a dtype or quantisation scheme")]


class MoESpec(Spec):
    """Routed experts (in `groups`, MoGE-style when > 1) plus always-on shared experts.

    `first_dense_layers` leading layers keep a dense FFN of the model's `ffn` size; after them every
    `every`-th layer is an MoE layer (the last of each group of `every`: M3ViT's odd layers with every = 2),
    the others dense.
    """

    experts: Count
    top_k: Count
    groups: Count = 1
    expert_ffn: Count
    shared_experts: Natural = 0
    shared_ffn: Count | None = None
    first_dense_layers: Natural = 0
    every: Count = 1

    @model_validator(mode="after")
    def _routing(self) -> MoESpec:
        check_routing(self.experts, self.top_k, self.groups)
        return self


class ModelSpec(Spec):
    """A transformer: `decoder` (causal LM) or `encoder` (BERT-style, bidirectional)."""

    name: Name
    description: str
    source: Source
    architecture: Literal["decoder", "encoder"] = "decoder"
    hidden: Count
    layers: Layers
    heads: PerLayer
    kv_heads: PerLayer | None = None
    head_dim: Count | None = None
    ffn: PerLayer = Field(description="dense FFN width (the MoE layers use moe.expert_ffn)")
    ffn_kind: Literal["gated", "plain"] = Field("gated", description="gated: SwiGLU, 3 matrices; plain: 2")
    vocab: Count
    tied_embeddings: StrictBool = False
    position_embeddings: Natural = Field(0, description="learned absolute positions (BERT: 512); 0 for RoPE")
    alibi: StrictBool = Field(False, description="ALiBi attention biases in place of positions (MPT): no RoPE")
    token_types: Natural = 0
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    linear_bias: StrictBool = Field(False, description="every linear layer has a bias (BERT)")
    qkv_bias: StrictBool = Field(False, description="only the q, k, v projections have a bias (Qwen2)")
    pooler: StrictBool = False
    moe: MoESpec | None = None
    weight_dtype: FormatName = "bf16"
    embedding_dtype: FormatName = "bf16"
    max_context: Count

    @model_validator(mode="after")
    def _shapes(self) -> ModelSpec:
        for field in ("heads", "kv_heads", "ffn"):
            value = getattr(self, field)
            if isinstance(value, list) and len(value) != self.layers:
                raise ValueError(f"{field}: {len(value)} per-layer values for {self.layers} layers")
        for i in range(self.layers):
            if self.layer_heads(i) % self.layer_kv_heads(i):
                raise ValueError(f"layer {i}: heads ({self.layer_heads(i)}) not a multiple of kv_heads "
                                 f"({self.layer_kv_heads(i)})")
        if self.head_dim is None and isinstance(self.heads, list):
            raise ValueError("head_dim: required with per-layer heads")
        if self.head_dim is None and self.hidden % self.heads:
            raise ValueError(f"head_dim: required, as hidden ({self.hidden}) is not a multiple of heads ({self.heads})")
        if self.rotary and self.dim_per_head % 2:
            raise ValueError(f"head_dim: {self.dim_per_head} per head is odd; RoPE rotates pairs of dims (give an "
                             "even head_dim, or position_embeddings or alibi for a model without rotary positions)")
        if self.moe and self.moe.first_dense_layers > self.layers:
            raise ValueError("moe.first_dense_layers exceeds layers")
        for field in ("weight_dtype", "embedding_dtype"):
            resolve_format(getattr(self, field))
        return self

    def _at(self, value: int | list[int], layer: int) -> int:
        return value[layer] if isinstance(value, list) else value

    def layer_heads(self, layer: int) -> int:
        return self._at(self.heads, layer)

    def layer_kv_heads(self, layer: int) -> int:
        return self._at(self.kv_heads, layer) if self.kv_heads is not None else self.layer_heads(layer)

    def layer_ffn(self, layer: int) -> int:
        return self._at(self.ffn, layer)

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden // self._at(self.heads, 0)  # validated: heads divides hidden

    def is_moe_layer(self, layer: int) -> bool:
        moe = self.moe
        return moe is not None and layer >= moe.first_dense_layers and \
            (layer - moe.first_dense_layers) % moe.every == moe.every - 1

    @cached_property
    def _layer_shapes(self) -> list[tuple[int, int, int, bool]]:
        return [(self.layer_heads(i), self.layer_kv_heads(i), self.layer_ffn(i), self.is_moe_layer(i))
                for i in range(self.layers)]

    def layer_runs(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Layers start..stop−1 as (first layer, count) runs of identically shaped layers."""
        runs: list[tuple[int, int]] = []
        previous = None
        for layer in range(start, stop):
            key = self._layer_shapes[layer]
            if key == previous:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((layer, 1))
            previous = key
        return runs

    @property
    def rotary(self) -> bool:
        """Whether the layers rotate queries and keys (RoPE): a decoder without learned positions or ALiBi."""
        return self.architecture == "decoder" and self.position_embeddings == 0 and not self.alibi

    @property
    def ffn_matrices(self) -> int:
        return 3 if self.ffn_kind == "gated" else 2

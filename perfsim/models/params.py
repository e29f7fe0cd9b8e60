"""Parameter counts of a ModelSpec: total, active per token, and by part.

Active parameters count what one token uses: the input embedding row lookup is
counted as the whole embedding (as the Mixtral and Pangu papers do), the LM head,
attention, norms, shared experts and the top_k routed experts per MoE layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.models.spec import ModelSpec


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one transformer layer, by part."""

    attention: int
    dense_ffn: int
    expert: int  # one routed expert
    experts: int  # all routed experts
    shared: int
    router: int
    norms: int

    @property
    def total(self) -> int:
        return self.attention + self.dense_ffn + self.experts + self.shared + self.router + self.norms


def layer_params(model: ModelSpec, layer: int) -> LayerParams:
    h, d = model.hidden, model.dim_per_head
    q, kv = model.layer_heads(layer) * d, model.layer_kv_heads(layer) * d
    attention = h * q + 2 * h * kv + q * h
    if model.linear_bias:
        attention += q + 2 * kv + h
    elif model.qkv_bias:
        attention += q + 2 * kv
    norm = h if model.norm == "rmsnorm" else 2 * h
    bias = model.linear_bias
    dense = expert = experts = shared = router = 0
    if model.is_moe_layer(layer):
        moe = model.moe
        assert moe is not None
        expert = model.ffn_matrices * h * moe.expert_ffn
        experts = moe.experts * expert
        shared = moe.shared_experts * model.ffn_matrices * h * (moe.shared_ffn or moe.expert_ffn)
        router = h * moe.experts
    else:
        f = model.layer_ffn(layer)
        dense = model.ffn_matrices * h * f + ((model.ffn_matrices - 1) * f + h if bias else 0)
    return LayerParams(attention, dense, expert, experts, shared, router, 2 * norm)


def embedding_params(model: ModelSpec) -> int:
    """Input embedding (with learned positions and token types) and its norm, if any."""
    table = (model.vocab + model.position_embeddings + model.token_types) * model.hidden
    return table + (2 * model.hidden if model.architecture == "encoder" else 0)


def lm_head_matrix(model: ModelSpec) -> int:
    """Weights of the LM head's vocab × hidden matrix every token multiplies (decoders; tied or not)."""
    return model.vocab * model.hidden if model.architecture == "decoder" else 0


def head_params(model: ModelSpec) -> int:
    """LM head (0 when tied to the embedding), final norm, and a pooler if the model has one."""
    final_norm = (model.hidden if model.norm == "rmsnorm" else 2 * model.hidden) if model.architecture == "decoder" \
        else 0
    lm_head = 0 if model.tied_embeddings else lm_head_matrix(model)
    pooler = model.hidden * model.hidden + model.hidden if model.pooler else 0
    return lm_head + final_norm + pooler


def total_params(model: ModelSpec) -> int:
    return embedding_params(model) + head_params(model) + sum(
        layer_params(model, i).total for i in range(model.layers))


def active_params(model: ModelSpec) -> int:
    """Parameters one token uses (routed experts: top_k per MoE layer)."""
    active = embedding_params(model) + head_params(model)
    for i in range(model.layers):
        p = layer_params(model, i)
        routed = model.moe.top_k * p.expert if model.is_moe_layer(i) and model.moe else 0
        active += p.total - p.experts + routed
    return active


def flops_per_token(model: ModelSpec) -> int:
    """2 FLOP per weight one token multiplies: the active weights outside the input-embedding lookup,
    the LM head included even when it is tied to the embedding (attention over the context comes on top)."""
    tied_head = lm_head_matrix(model) if model.tied_embeddings else 0
    return 2 * (active_params(model) - embedding_params(model) + tied_head)

"""A Hugging Face `config.json` as a ModelSpec, offline: the Llama, Qwen2, Mixtral and DeepSeek-MoE families.

The spec is named after the folder holding the file (`models/llama-3.1-8b/config.json` → `llama-3.1-8b`).
What a ModelSpec cannot hold is refused with a one-line error naming the field, never approximated:
multi-head latent attention (DeepSeek-V2/V3's `kv_lora_rank`: its KV cache is a latent vector, not
heads × head_dim), sliding-window attention, biases on every linear layer, non-SiLU activations and
quantised checkpoints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from perfsim.errors import PerfsimError
from perfsim.models.spec import MAX_LAYERS
from perfsim.specfile import read_text, shown, validate

FAMILIES = ("llama", "qwen2", "mixtral", "deepseek", "deepseek_v2", "deepseek_v3")
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
REFUSED = {
    "kv_lora_rank": "multi-head latent attention (DeepSeek-V2/V3 MLA) caches a latent vector, not K and V heads",
    "q_lora_rank": "multi-head latent attention (low-rank queries)",
    "quantization_config": "quantised checkpoints (give a model YAML with weight_dtype instead)",
}


def read_hf_config(path: Path) -> Any:
    """The ModelSpec of the `config.json` at `path`; Raise PerfsimError naming the file and field otherwise."""
    where = shown(path)
    try:
        config = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise PerfsimError(f"{where}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(config, dict):
        raise PerfsimError(f"{where}: expected a JSON object of fields, got {type(config).__name__}")
    from perfsim.models.spec import ModelSpec

    return validate(ModelSpec, spec_fields(config, _name(path), where), str(where))


def _name(path: Path) -> str:
    folder = path.resolve().parent.name.lower()
    name = re.sub(r"[^a-z0-9_.-]+", "-", folder).strip("-._")
    if not name:
        raise PerfsimError(f"{shown(path)}: its folder's name cannot name a model; put config.json in a named folder")
    return name


def spec_fields(config: dict[str, Any], name: str, where: Path | str) -> dict[str, Any]:
    """The ModelSpec fields (a dict, validated by the caller) of one decoded `config.json`."""

    def need(key: str) -> Any:
        if key not in config:
            raise PerfsimError(f"{where}: {key}: missing (every {family} config.json has it)")
        return config[key]

    family = str(config.get("model_type", ""))
    if family not in FAMILIES:
        raise PerfsimError(f"{where}: model_type: '{family}' is not one perfsim reads; it reads "
                           f"{', '.join(FAMILIES)} (write a model YAML for others, see docs/guide/your-own.md)")
    for key, why in REFUSED.items():
        if config.get(key) is not None:
            raise PerfsimError(f"{where}: {key}: {why}; a perfsim ModelSpec cannot represent it")
    if config.get("use_sliding_window") or (family != "qwen2" and config.get("sliding_window")):
        raise PerfsimError(f"{where}: sliding_window: sliding-window attention is not represented in a ModelSpec")
    if config.get("hidden_act", "silu") != "silu":
        raise PerfsimError(f"{where}: hidden_act: '{config['hidden_act']}' (perfsim reads SiLU-gated FFNs only)")
    for key in ("mlp_bias", "attention_bias"):
        if config.get(key):
            raise PerfsimError(f"{where}: {key}: biases on the output projection or FFN are not represented")
    dtype = config.get("torch_dtype", "bfloat16")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise PerfsimError(f"{where}: torch_dtype: '{dtype}' is not one of {', '.join(DTYPES)}")
    heads = need("num_attention_heads")
    fields: dict[str, Any] = {
        "name": name,
        "description": f"{name}: {family} decoder imported from its Hugging Face config.json",
        "source": f"Hugging Face config.json ({where})",
        "hidden": need("hidden_size"), "layers": need("num_hidden_layers"), "heads": heads,
        "kv_heads": heads if config.get("num_key_value_heads") is None else config["num_key_value_heads"],
        "ffn": need("intermediate_size"), "vocab": need("vocab_size"),
        "tied_embeddings": config.get("tie_word_embeddings", False),
        "qkv_bias": family == "qwen2", "weight_dtype": DTYPES[dtype], "embedding_dtype": DTYPES[dtype],
        "max_context": need("max_position_embeddings"),
    }
    if config.get("head_dim") is not None:
        fields["head_dim"] = config["head_dim"]
    if family == "mixtral":
        fields["moe"] = {"experts": need("num_local_experts"), "top_k": need("num_experts_per_tok"),
                         "expert_ffn": need("intermediate_size")}
    elif family.startswith("deepseek") and config.get("n_routed_experts"):
        fields["moe"] = _deepseek_moe(config, need, where)
    return fields


def _deepseek_moe(config: dict[str, Any], need: Any, where: Path | str) -> dict[str, Any]:
    """DeepSeek-MoE: `first_k_dense_replace` dense layers, then an MoE layer wherever layer % moe_layer_freq
    == 0, each with `n_shared_experts` always-on experts and `n_routed_experts` routed ones."""
    def layer_count(key: str, value: Any, low: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_LAYERS:
            raise PerfsimError(f"{where}: {key}: must be an integer from {low} to {MAX_LAYERS:,}, got {value!r}")
        return value

    first = layer_count("first_k_dense_replace", config.get("first_k_dense_replace", 0), 0)
    every = layer_count("moe_layer_freq", config.get("moe_layer_freq", 1), 1)
    layers = layer_count("num_hidden_layers", need("num_hidden_layers"), 1)
    theirs = [i >= first and i % every == 0 for i in range(layers)]
    ours = [i >= first and (i - first) % every == every - 1 for i in range(layers)]
    if theirs != ours:
        raise PerfsimError(f"{where}: moe_layer_freq: MoE layers at layer % {every} == 0 after "
                           f"{first} dense ones cannot be placed by moe.every (the last of every {every})")
    expert_ffn = need("moe_intermediate_size")
    return {"experts": need("n_routed_experts"), "top_k": need("num_experts_per_tok"), "expert_ffn": expert_ffn,
            "groups": 1, "shared_experts": config.get("n_shared_experts") or 0,
            "shared_ffn": expert_ffn, "first_dense_layers": first, "every": every}

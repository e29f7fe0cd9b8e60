"""Hugging Face config.json import: real configs (tests/hf_configs, sources in its README) against the parameter
totals their model cards and papers publish."""

import json
from pathlib import Path

import pytest

import perfsim as ps
from perfsim.errors import PerfsimError
from perfsim.models.params import active_params, total_params

CONFIGS = Path(__file__).parent / "hf_configs"

# (folder, published total, published active or None): rounded as published, so within 1 %.
PUBLISHED = [
    ("llama-3.1-8b", 8.03e9, None),
    ("llama-3.2-1b", 1.23e9, None),
    ("qwen2.5-7b", 7.61e9, None),
    ("qwen2.5-0.5b", 0.49e9, None),
    ("mixtral-8x7b-v0.1", 46.7e9, 12.9e9),
    ("deepseek-moe-16b-base", 16.4e9, 2.8e9),
]


@pytest.mark.parametrize(("folder", "total", "active"), PUBLISHED)
def test_parameter_counts_match_the_published_totals(folder, total, active):
    model = ps.model(CONFIGS / folder / "config.json")
    assert model.name == folder
    assert total_params(model) == pytest.approx(total, rel=0.01)
    if active is not None:
        assert active_params(model) == pytest.approx(active, rel=0.02)


def test_non_embedding_counts_match_qwen_cards():
    # Qwen2.5 cards: 6.53 B (7B, untied: embedding and LM head both excluded) and 0.36 B (0.5B, tied).
    for folder, non_embedding in (("qwen2.5-7b", 6.53e9), ("qwen2.5-0.5b", 0.36e9)):
        model = ps.model(CONFIGS / folder / "config.json")
        tables = (1 if model.tied_embeddings else 2) * model.vocab * model.hidden
        assert total_params(model) - tables - model.hidden == pytest.approx(non_embedding, rel=0.01)


def test_fields_map_by_family():
    qwen = ps.model(CONFIGS / "qwen2.5-7b" / "config.json")
    assert (qwen.qkv_bias, qwen.kv_heads, qwen.max_context) == (True, 4, 131072)
    llama = ps.model(CONFIGS / "llama-3.2-1b" / "config.json")
    assert (llama.tied_embeddings, llama.head_dim, llama.qkv_bias) == (True, 64, False)
    moe = ps.model(CONFIGS / "deepseek-moe-16b-base" / "config.json").moe
    assert (moe.experts, moe.top_k, moe.shared_experts, moe.shared_ffn, moe.first_dense_layers, moe.every) == \
        (64, 6, 2, 1408, 1, 1)


def test_mla_is_refused_naming_the_field():
    with pytest.raises(PerfsimError, match=r"deepseek-v3/config.json: kv_lora_rank: multi-head latent attention"):
        ps.model(CONFIGS / "deepseek-v3" / "config.json")


def _write(tmp_path, **changes):
    """The DeepSeek-MoE config with `changes` (a value of None drops the field), in tmp_path/my-moe/."""
    config = json.loads((CONFIGS / "deepseek-moe-16b-base" / "config.json").read_text())
    config.update(changes)
    config = {key: value for key, value in config.items() if value is not None}
    folder = tmp_path / "my-moe"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json"


@pytest.mark.parametrize(("changes", "message"), [
    ({"model_type": "gpt2"}, r"model_type: 'gpt2' is not one perfsim reads"),
    ({"hidden_act": "gelu"}, r"hidden_act: 'gelu'"),
    # no dense layer first, freq 2: DeepSeek's MoE layers 0, 2, 4, … but moe.every = 2 gives 1, 3, 5, …
    ({"moe_layer_freq": 2, "first_k_dense_replace": 0}, r"moe_layer_freq: MoE layers at layer % 2 == 0"),
    ({"num_hidden_layers": None}, r"num_hidden_layers: missing"),
    ({"torch_dtype": "int8"}, r"torch_dtype: 'int8'"),
])
def test_unrepresentable_or_bad_fields_are_refused(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(PerfsimError, match=message):
        ps.model(path)


def test_moe_layer_freq_that_perfsim_can_place(tmp_path):
    # first_k_dense_replace 1, freq 2: DeepSeek puts MoE where i >= 1 and i % 2 == 0 → 2, 4, …; perfsim's
    # every = 2 after 1 dense layer puts it at the last of each pair after layer 0 → 2, 4, …: the same layers.
    model = ps.model(_write(tmp_path, moe_layer_freq=2))
    assert [i for i in range(6) if model.is_moe_layer(i)] == [2, 4]


def test_malformed_json_is_one_line(tmp_path):
    path = tmp_path / "broken" / "config.json"
    path.parent.mkdir()
    path.write_text("{\"hidden_size\": 4096,,}")
    with pytest.raises(PerfsimError, match=r"config.json: malformed JSON at line 1"):
        ps.model(path)


def test_cli_show_and_model_flag(cli):
    path = str(CONFIGS / "mixtral-8x7b-v0.1" / "config.json")
    shown = cli("model", "show", path, "--format", "json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["moe"]["experts"] == 8
    step = cli("estimate", "--model", path, "--hardware", "mi300x", "--phase", "decode", "--format", "json")
    assert step.code == 0, step.err
    refused = cli("model", "show", str(CONFIGS / "deepseek-v3" / "config.json"))
    assert refused.code == 2 and "kv_lora_rank" in refused.err

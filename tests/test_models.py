"""Model specs: parameter counts against the papers, and the CLI to list and show them."""

import json

import pytest

from perfsim.models import active_params, load_model, shipped_models, total_params
from perfsim.models.params import embedding_params, flops_per_token

REQUIRED = ["llama-2-7b", "llama-3-8b", "llama-3-70b", "qwen2-72b", "openelm-3b", "openelm-1.1b", "mixtral-8x7b",
            "pangu-pro-moe", "zaya1-base", "bitnet-b1.58-3b", "bert-base"]


@pytest.mark.parametrize(
    ("name", "total", "active"),
    [
        ("llama-2-7b", 6.738e9, 6.738e9),
        ("llama-3-8b", 8.030e9, 8.030e9),
        ("mixtral-8x7b", 46.70e9, 12.88e9),
        ("pangu-pro-moe", 71.99e9, 16.50e9),
        ("openelm-1.1b", 1.0799e9, 1.0799e9),  # 1,079,891,456 in the checkpoint
        ("openelm-3b", 3.0366e9, 3.0366e9),  # 3,036,647,424 in the checkpoint
        ("bert-base", 109.48e6, 109.48e6),  # bert-base-uncased with its pooler
    ],
)
def test_parameter_counts(name, total, active):
    model = load_model(name)
    assert total_params(model) == pytest.approx(total, rel=0.005)
    assert active_params(model) == pytest.approx(active, rel=0.005)


def test_llama_2_7b_by_hand():
    # embedding 32000·4096 + head 32000·4096 + 32 layers × (4·4096² attention + 3·4096·11008 MLP + 2·4096 norms)
    # + final norm 4096
    expected = 2 * 32000 * 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
    assert total_params(load_model("llama-2-7b")) == expected == 6_738_415_616


def test_zaya1_without_embedding_matches_zyphra():
    # Zyphra's 8.3B total / 760M active leave out the tied 262,272 × 2048 embedding
    model = load_model("zaya1-base")
    assert total_params(model) - embedding_params(model) == pytest.approx(8.3e9, rel=0.01)
    assert active_params(model) - embedding_params(model) == pytest.approx(0.76e9, rel=0.07)


def test_bitnet_ties_embedding_and_head():
    # 1bitLLM/bitnet_b1_58-3B ties its 32002 × 3200 embedding to the LM head, so it is counted once:
    # embedding 102,406,400 + 26 layers × (4·3200² attention + 3·3200·8640 FFN + 2·3200 norms = 123,910,400)
    # + final norm 3200 = 3,324,080,000 (3.32B, not 3.43B)
    model = load_model("bitnet-b1.58-3b")
    assert model.tied_embeddings
    assert total_params(model) == 32002 * 3200 + 26 * (4 * 3200**2 + 3 * 3200 * 8640 + 2 * 3200) + 3200 == 3_324_080_000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # ZAYA1 (tied): 40 layers × (attention 2048·1024 + 2·2048·256 + 1024·2048 = 5,242,880; one of 16 experts
        # 3·2048·2048 = 12,582,912; router 2048·16 = 32,768; norms 2·2048) = 714,506,240, final norm 2048, and
        # the tied LM head 262,272 × 2048 = 537,133,056 that every token still multiplies: 1,251,641,344 weights
        ("zaya1-base", 2 * (40 * (5_242_880 + 12_582_912 + 32_768 + 4096) + 2048 + 262_272 * 2048)),
        # BitNet 3B (tied): 26 × 123,910,400 + final norm 3200 + LM head 32002 × 3200
        ("bitnet-b1.58-3b", 2 * (26 * 123_910_400 + 3200 + 32002 * 3200)),
        # Llama-2-7B (untied): every weight but the input embedding, 6,738,415,616 − 32000 · 4096
        ("llama-2-7b", 2 * (6_738_415_616 - 32000 * 4096)),
    ],
)
def test_flops_per_token_multiplies_the_lm_head_even_when_tied(name, expected):
    assert flops_per_token(load_model(name)) == expected


def test_model_list_json(cli):
    result = cli("model", "list", "--format", "json")
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert set(REQUIRED) <= set(rows) == set(shipped_models())
    mixtral = rows["mixtral-8x7b"]
    assert mixtral["mixture_of_experts"] is True
    assert mixtral["params"] == total_params(load_model("mixtral-8x7b"))
    # 2 FLOP per active weight outside the input embedding
    assert mixtral["flops_per_token"] == 2 * (mixtral["active_params"] - 32000 * 4096)


def test_model_show_path_and_typo(cli, tmp_path):
    text = (load_model.__globals__["WORKLOAD_DIR"] / "llama-2-7b.yaml").read_text()
    good = tmp_path / "llama-2-7b.yaml"
    good.write_text(text)
    assert cli("model", "show", str(good)).code == 0
    bad = tmp_path / "bad" / "llama-2-7b.yaml"
    bad.parent.mkdir()
    bad.write_text(text.replace("heads: 32", "haeds: 32"))
    result = cli("model", "show", str(bad))
    assert result.code == 2
    assert "haeds" in result.err and "did you mean 'heads'" in result.err


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("ffn: 11008", "ffn: [11008, 11008]"), "2 per-layer values for 32 layers"),
        (("heads: 32", "heads: 32\nkv_heads: 5"), "not a multiple of kv_heads"),
        (("layers: 32", "layers: -1"), "greater than 0"),
        (("vocab: 32000", "vocab: 32000\nweight_dtype: fp12"), "unknown dtype"),
    ],
)
def test_bad_model_specs(cli, tmp_path, edit, needle):
    text = (load_model.__globals__["WORKLOAD_DIR"] / "llama-2-7b.yaml").read_text()
    path = tmp_path / "llama-2-7b.yaml"
    path.write_text(text.replace(*edit))
    result = cli("model", "show", str(path))
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1

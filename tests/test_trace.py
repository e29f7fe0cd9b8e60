"""The trace's attention pieces (a cached prefix, a mixed serving iteration) and KV heads per TP rank, by hand."""

from dataclasses import replace

import pytest

from perfsim.errors import PerfsimError
from perfsim.models.scenario import Piece, Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.models.trace import build_trace
from perfsim.ops import Attention, Gemm

A100 = Scenario(model="llama-2-7b", hardware="a100-sxm-80gb")
KV_BYTES_PER_TOKEN = 2 * 32 * 4096 * 2  # llama-2-7b: K and V, 32 layers, 32 heads × 128, bf16 = 524,288 B


def _ops(r, kind, name=None):
    return [t.op for t in build_trace(r).ops if isinstance(t.op, kind) and (name is None or t.op.name == name)]


def test_prefill_attends_over_a_cached_prefix():
    # --context in prefill: 1,024 tokens already cached; the 512-token prompt attends over 1,536 keys
    r = resolve(A100.model_copy(update={"phase": "prefill", "batch": 2, "prompt_len": 512, "context": 1024}))
    attention = _ops(r, Attention)[0]
    assert (attention.batch, attention.q_len, attention.kv_len) == (2, 512, 1536)
    # causal pairs per sequence and head: ℓ · (p + (ℓ + 1) / 2) = 512 · (1024 + 256.5) = 655,616
    assert attention.scores == 2 * 32 * 512 * (1024 + 513 / 2)
    assert _ops(r, Gemm, "qkv")[0].m == 2 * 512  # the GEMMs see only the new tokens
    step = estimate_step(r)
    assert step.memory.kv_bytes == 2 * 1536 * KV_BYTES_PER_TOKEN  # the prefix is held in the cache too
    assert step.step_s > estimate_step(A100.model_copy(update={"phase": "prefill", "batch": 2})).step_s


def test_context_defaults_by_phase():
    prefill = resolve(A100.model_copy(update={"phase": "prefill", "prompt_len": 300}))
    decode = resolve(A100)
    assert (prefill.context, prefill.kv_len) == (0, 300)  # a fresh prompt
    assert (decode.context, decode.kv_len) == (2048, 2049)  # the decode default is unchanged


def test_prefix_and_prompt_together_must_fit_the_context():
    with pytest.raises(PerfsimError, match="prefill of 4112 tokens exceeds llama-2-7b's max_context"):
        resolve(A100.model_copy(update={"phase": "prefill", "prompt_len": 512, "context": 3600}))


def test_a_mixed_iteration_is_one_pass_with_attention_per_piece():
    # 16 decoding sequences at context 3,000, a fresh 512-token prompt and the second 512-token chunk of another
    mix = (Piece(16, 1, 3000), Piece(1, 512, 0), Piece(1, 512, 512))
    r = replace(resolve(A100), mix=mix)
    layer_attention = _ops(r, Attention)[:3]
    assert [(a.batch, a.q_len, a.kv_len) for a in layer_attention] == [(16, 1, 3001), (1, 512, 512), (1, 512, 1024)]
    assert sum(a.scores for a in layer_attention) == 32 * (16 * 3001 + 512 * 513 / 2 + 512 * (512 + 513 / 2))
    assert {g.m for g in _ops(r, Gemm) if g.name != "lm_head"} == {16 + 512 + 512}  # every token, weights read once
    assert _ops(r, Gemm, "lm_head")[0].m == 18  # one row per sequence


def _model_with_kv_heads(tmp_path, kv_heads: int) -> str:
    path = tmp_path / "gqa-test.yaml"
    path.write_text(f"name: gqa-test\ndescription: a GQA test model\nsource: this test\nhidden: 4096\nlayers: 4\n"
                    f"heads: 32\nkv_heads: {kv_heads}\nffn: 11008\nvocab: 32000\nmax_context: 4096\n")
    return str(path)


@pytest.mark.parametrize(("kv_heads", "tp", "per_rank"), [(8, 4, 2), (2, 4, 1), (2, 8, 1)])
def test_kv_heads_per_rank(tmp_path, kv_heads, tp, per_rank):
    # 8 KV heads over 4 ranks: 2 each; 2 KV heads over 4 or 8 ranks: each rank holds 1, replicated tp / 2 times
    scenario = Scenario(model=_model_with_kv_heads(tmp_path, kv_heads), hardware="dgx-h100", devices=tp, tp=tp,
                        batch=1, context=1023)
    r = resolve(scenario)
    assert _ops(r, Attention)[0].kv_heads == per_rank
    assert _ops(r, Gemm, "qkv")[0].n == (32 // tp + 2 * per_rank) * 128
    # the footprint holds the same KV heads: 1,024 tokens × K,V × 4 layers × per_rank × 128 × 2 B
    assert estimate_step(r).memory.kv_bytes == 1024 * 2 * 4 * per_rank * 128 * 2


@pytest.mark.parametrize(("model", "needle"), [
    ("openelm-3b", "tp (2) must divide the 3 KV heads of openelm-3b (layer 0, 12 query heads)"),
    ("openelm-1.1b", "tp (2) must divide the 5 KV heads of openelm-1.1b (layer 3, 20 query heads)"),
])
def test_kv_heads_that_do_not_split_are_refused_in_one_line(cli, model, needle):
    # 3 KV heads over 2 ranks would need a head split across ranks; ⌊3 / 2⌋ = 1 used to drop a third of the cache
    result = cli("estimate", "--model", model, "--hardware", "dgx-h100", "--devices", "2", "--tp", "2")
    assert result.code == 2
    assert result.err.strip().splitlines() == [f"perfsim: error: {needle} or be a multiple of them"]

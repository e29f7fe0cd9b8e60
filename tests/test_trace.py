"""The trace's attention pieces (a cached prefix, a mixed serving iteration) and KV heads per TP rank, by hand."""

from dataclasses import replace

import pytest

from perfsim.cost import cost
from perfsim.cost.derating import launch_s
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models.scenario import Piece, Resolved, Scenario, resolve
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


# --- the small kernels of a decoder layer: RoPE, the KV-cache append, the fused residual adds ---

LLAMA3_DECODE = Scenario(model="llama-3-8b", hardware="h100-sxm", phase="decode", batch=1, context=1024)
LAUNCH_S = launch_s(load_hardware("h100-sxm"))
HBM = 3.35e12 * 0.8866  # h100-sxm's calibrated HBM triad (B/s)
LAYER_OPS = ["attn_norm", "qkv", "rope", "kv_append", "attention", "o_proj", "ffn_norm", "ffn_up", "ffn_act",
             "ffn_down"]


def _named(r, name, **kw):
    return next(t.op for t in build_trace(r, **kw).ops if t.op.label == name)


def test_rope_and_kv_append_of_llama3_8b_batch1_decode_by_hand():
    r = resolve(LLAMA3_DECODE)
    rope, append = _named(r, "rope"), _named(r, "kv_append")
    # 1 token, 32 query + 8 key heads of 128 dims: 40 · 128 = 5,120 elements rotated, 3 FLOP each = 15,360;
    # read and written in bf16 (2 · 5,120 · 2 B = 20,480) + one cos/sin cache row of 64 + 64 bf16 = 256 B
    assert (rope.elements, rope.flops, rope.bytes) == (5120, 15_360, 20_736)
    # 1 token's K and V, 2 · 8 · 128 = 2,048 elements, read bf16 and stored bf16: 8,192 B, a copy (0 FLOP)
    assert (append.elements, append.flops, append.bytes) == (2048, 0, 8192)
    fp8 = _named(resolve(LLAMA3_DECODE.model_copy(update={"kv_dtype": "fp8_e4m3"})), "kv_append")
    assert (fp8.flops, fp8.bytes) == (2048, 2048 * 2 + 2048 * 1)  # scaled into fp8: 1 FLOP and 1 B per element
    # the fused add before each norm reads and writes the 4,096-wide residual row: 2 · 4,096 · 2 B = 16,384 B more
    # than x (8,192) + gain (8,192) + y (8,192), and 1 FLOP per element more than rmsnorm's 4
    first, later = [t.op for t in build_trace(r).ops if t.op.label == "attn_norm"]
    assert (later.residual, later.bytes, later.flops) == ("pre_norm", 4 * 8192 + 8192, 5 * 4096)
    # but layer 0 has no residual yet (vLLM: residual is None, a plain rms_norm): x + gain + y, 4 FLOP per element
    assert (first.residual, first.bytes, first.flops) == ("none", 3 * 8192, 4 * 4096)
    assert _named(r, "ffn_norm").residual == _named(r, "final_norm").residual == "pre_norm"


def test_a_decoder_layer_runs_ten_kernels_in_order():
    ops = [t for t in build_trace(resolve(LLAMA3_DECODE)).ops]
    assert [t.op.label for t in ops] == ["embedding", *LAYER_OPS, *LAYER_OPS, "final_norm", "lm_head"]
    assert [(t.repeat, t.layer) for t in ops[1:-2]] == [(1, 0)] * 10 + [(31, 1)] * 10  # layer 0 split off


def test_only_the_first_pipeline_stage_starts_without_a_residual():
    """pp = 2: stage 1 receives the residual with the hidden states (vLLM's IntermediateTensors), so its first
    layer (16) fuses the add; Llama-3-8B's 32 layers run as layer 0, layers 1-15, layers 16-31."""
    r = resolve(LLAMA3_DECODE.model_copy(update={"hardware": "dgx-h100", "devices": 2, "pp": 2}))
    norms = [(t.stage, t.layer, t.repeat, t.op.residual) for t in build_trace(r).ops if t.op.label == "attn_norm"]
    assert norms == [(0, 0, 1, "none"), (0, 1, 15, "pre_norm"), (1, 16, 16, "pre_norm")]


def test_a_pipeline_send_carries_the_residual_only_where_it_is_kept_apart():
    """pp = 2, batch 4 decode of Llama-3-8B (hidden 4,096, bf16): vLLM sends hidden_states and residual
    (IntermediateTensors), 2 · 4 tokens · 4,096 · 2 B = 65,536 B; a training forward (Megatron: the layer output
    already holds the residual) sends one, 32,768 B; bert-base (post-norm, hidden 768) prefill of 128 tokens sends
    its layer output alone, 128 · 768 · 2 B = 196,608 B."""
    llama = resolve(Scenario(model="llama-3-8b", hardware="dgx-h100", phase="decode", batch=4, context=1024,
                             devices=2, pp=2))
    bert = resolve(Scenario(model="bert-base", hardware="dgx-h100", phase="prefill", prompt_len=128, devices=2, pp=2))

    def sends(r: Resolved, inference: bool = True) -> list[tuple[int, float]]:
        return [(t.stage, t.op.size_bytes) for t in build_trace(r, inference).ops if t.op.label == "pp_send"]

    assert sends(llama) == [(1, 2 * 4 * 4096 * 2)]
    assert sends(llama, inference=False) == [(1, 4 * 4096 * 2)]
    assert sends(bert) == [(1, 128 * 768 * 2)]


def test_only_rotary_decoders_rotate_and_only_inference_appends_to_a_cache():
    mpt = [t.op.label for t in build_trace(resolve(Scenario(model="mpt-7b", hardware="h100-sxm", context=512))).ops]
    assert "rope" not in mpt and "kv_append" in mpt  # ALiBi: no rotation, but its keys are still cached
    bert = build_trace(resolve(Scenario(model="bert-base", hardware="h100-sxm", phase="prefill", prompt_len=128)))
    names = [t.op.label for t in bert.ops]
    assert "rope" not in names and "kv_append" not in names  # learned positions; an encoder keeps no cache
    # every post-norm LayerNorm adds its sublayer's input (LN(x + sublayer(x))), layer 0's first one too
    assert {t.op.residual for t in bert.ops if t.op.label.endswith("norm")} == {"post_norm"}
    assert [t.repeat for t in bert.ops if t.op.label == "attn_norm"] == [12]  # so bert-base's layers stay folded
    training = [t.op.label for t in build_trace(resolve(LLAMA3_DECODE), inference=False).ops]
    assert "rope" in training and "kv_append" not in training


def test_llama3_8b_batch1_decode_gains_two_launches_a_layer_and_their_traffic():
    """Against the trace without them: 2 kernels × 32 layers × 2.43 µs (h100-sxm's op_overhead, CAL-LAUNCH-H100)
    + their bytes over the HBM triad: rope 20,736 and kv_append 8,192 a layer, 16,384 B more on each of the 64
    fused-residual norms (2 a layer and the final norm, but layer 0's attn_norm): (32 · 28,928 + 64 · 16,384) B =
    1,974,272 B / 2.97 TB/s ≈ 0.66 µs. Every one of
    these ops is memory- (not compute-) bound: ≤ 5 FLOP per 2-byte element."""
    step = estimate_step(LLAMA3_DECODE)
    assert LAUNCH_S == 2.43e-6
    without = 0.0
    for t in step.trace.ops:
        if t.op.label in ("rope", "kv_append"):
            continue
        op = t.op.model_copy(update={"residual": "none"}) if t.op.label.endswith("norm") else t.op
        without += cost(op, load_hardware("h100-sxm")).time_s * t.repeat
    gained = 2 * 32 * LAUNCH_S + (32 * (20_736 + 8_192) + 64 * 16_384) / HBM
    assert step.step_s - without == pytest.approx(gained, rel=1e-9)
    assert gained == pytest.approx(156.18e-6, abs=0.01e-6)

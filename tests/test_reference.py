"""The reference core: every check passes, and a wrong count in the cost model is caught."""

import json

import pytest

from perfsim import ops
from perfsim.reference import load_all
from perfsim.reference.registry import CHECKS, Outcome, check, run_checks

load_all()

REQUIRED = {
    ("softmax", "three_pass_recompute"), ("softmax", "three_pass_reload"), ("softmax", "two_pass"),
    ("attention", "gqa"), ("attention", "kv_cache"), ("attention", "fused"), ("moe", "topk"), ("moe", "grouped"),
    ("lut_gemm", "ternary"), ("lut_gemm", "int2"), ("lut_gemm", "int4"), ("lut_gemm", "int8_table"),
    ("gemm", "mesh_cannon"), ("gemm", "mesh_gemv_ktree"), ("all_reduce", "ring"), ("reduce_scatter", "ring"),
    ("all_gather", "ring"), ("all_to_all", "ring"), ("rope", "neox"), ("kv_append", "bf16_fp8"),
    ("norm", "residual"),
    *(("format", v) for v in ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int4", "fp4_e2m1", "mxfp4", "posit8_0",
                              "posit16_1", "posit4_1", "fp16_simd_training")),
}


@pytest.mark.parametrize("entry", CHECKS, ids=lambda c: c.name)
def test_check_passes(entry):
    outcome = entry.run()
    assert outcome.passed, f"{entry.name}: {outcome}"


def test_verify_json_lists_every_required_check(cli):
    result = cli("verify", "--format", "json")
    assert result.code == 0, result.out
    rows = json.loads(result.out)
    assert len(rows) >= 20
    assert {(row["op"], row["variant"]) for row in rows} >= REQUIRED
    assert all(row["passed"] is True for row in rows)
    assert {"check", "op", "variant", "passed", "max_abs_error"} <= set(rows[0])


def test_a_wrong_flop_count_in_the_cost_model_fails_the_check(monkeypatch):
    gemm = next(c for c in CHECKS if c.name == "gemm-dense")
    assert gemm.run().passed
    monkeypatch.setattr(ops.Gemm, "flops", property(lambda self: 2.0 * self.m * self.n * self.k))  # forgets batch
    outcome = gemm.run()
    assert outcome.counts_match is False and not outcome.passed


def test_a_wrong_softmax_byte_rule_fails_the_check(monkeypatch):
    two_pass = next(c for c in CHECKS if c.name == "softmax-two-pass")
    monkeypatch.setitem(ops.SOFTMAX_PASSES, "two_pass", (3, 1))  # as if it read x three times
    assert two_pass.run().counts_match is False


def test_failing_check_makes_verify_exit_1(cli, monkeypatch):
    @check("always-wrong", op="gemm", variant="broken")
    def _broken() -> Outcome:
        return Outcome(1.0, 0.0, True)

    try:
        result = cli("verify")
        assert result.code == 1
        assert "1 failed" in result.out
    finally:
        CHECKS.pop()


def test_a_crashing_check_is_reported_failed():
    @check("crashes", op="gemm", variant="crash")
    def _crash() -> Outcome:
        raise RuntimeError("boom")

    try:
        row = next(r for r in run_checks() if r["check"] == "crashes")
        assert row["passed"] is False and "boom" in row["detail"]
    finally:
        CHECKS.pop()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 9), batch=st.integers(1, 3),
       dtype=st.sampled_from(["bf16", "fp32", "int8", "fp8_e4m3"]))
def test_gemm_counts_over_shapes(m, n, k, batch, dtype):
    import numpy as np

    from perfsim.reference.counter import Counter
    from perfsim.reference.kernels import counts_agree, gemm

    op = ops.Gemm(m=m, n=n, k=k, batch=batch, dtype=dtype)
    rng = np.random.default_rng(0)
    counter = Counter()
    c = gemm(rng.normal(size=(batch, m, k)), rng.normal(size=(batch, k, n)), op, counter)
    assert c.shape == (batch, m, n)
    assert counts_agree(op, counter)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 300), scale=st.floats(0.1, 1e4),
       variant=st.sampled_from(list(ops.SOFTMAX_PASSES)), allocate=st.booleans())
def test_softmax_variants_agree_over_shapes(rows, cols, scale, variant, allocate):
    import numpy as np

    from perfsim.reference.counter import Counter
    from perfsim.reference.kernels import counts_agree, softmax

    x = np.random.default_rng(1).uniform(-scale, scale, size=(rows, cols))
    op = ops.Softmax(rows=rows, cols=cols, variant=variant, write_allocate=allocate)
    counter = Counter()
    y = softmax(x, op, counter)
    expected = np.exp(x - x.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    assert np.isfinite(y).all()
    assert np.abs(y - expected).max() <= 1e-12
    assert counts_agree(op, counter)


@settings(max_examples=30, deadline=None)
@given(kv_heads=st.integers(1, 3), group=st.integers(1, 4), q_len=st.integers(1, 6), extra=st.integers(0, 9),
       causal=st.booleans(), fused=st.booleans())
def test_attention_counts_and_gqa_over_shapes(kv_heads, group, q_len, extra, causal, fused):
    import numpy as np

    from perfsim.reference.counter import Counter
    from perfsim.reference.kernels import attention, counts_agree

    heads, kv_len, d = kv_heads * group, q_len + extra, 4
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(1, heads, q_len, d)), rng.normal(size=(1, kv_heads, kv_len, d)), \
        rng.normal(size=(1, kv_heads, kv_len, d))
    op = ops.Attention(heads=heads, kv_heads=kv_heads, head_dim=d, q_len=q_len, kv_len=kv_len, causal=causal,
                       fused=fused)
    counter = Counter()
    out = attention(q, k, v, op, counter)
    mha = attention(q, np.repeat(k, group, axis=1), np.repeat(v, group, axis=1),
                    op.model_copy(update={"kv_heads": heads, "fused": False}), Counter())
    assert np.abs(out - mha).max() <= 1e-12
    assert counts_agree(op, counter)


def test_a_wrong_rope_flop_count_fails_the_check(monkeypatch):
    rope = next(c for c in CHECKS if c.name == "rope-neox")
    assert rope.run().passed
    monkeypatch.setattr(ops, "ROPE_FLOPS", 2.0)  # as if each rotated element took one multiply-add
    assert rope.run().counts_match is False

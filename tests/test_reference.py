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
    ("all_gather", "ring"), ("all_to_all", "ring"),
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

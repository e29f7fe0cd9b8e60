"""Scenarios → traces → memory and step estimates, checked by hand."""

import json

import pytest

from perfsim.hardware import load_hardware
from perfsim.models import load_model, total_params
from perfsim.models.params import embedding_params
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.models.trace import build_trace
from perfsim.ops import Collective, MoE


def _json(cli, *argv):
    result = cli("estimate", *argv, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_llama_2_7b_decode_on_a100_is_bounded_by_weight_and_kv_traffic(cli):
    out = _json(cli, "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--phase", "decode", "--batch", "1",
                "--context", "2048")
    model = load_model("llama-2-7b")
    weights = (total_params(model) - embedding_params(model)) * 2  # the embedding is gathered, not streamed
    kv = 2 * 32 * 4096 * 2048 * 2  # K and V, 32 layers, 4096 wide, 2048 tokens, 2 bytes
    floor = (weights + kv) / 2.039e12  # ≈ 7.0 ms at the datasheet HBM bandwidth
    assert floor == pytest.approx(7.0e-3, rel=0.01)
    assert floor <= out["tpot_s"] <= 1.5 * floor
    assert out["ttft_s"] is None
    assert out["tokens_per_s"] == pytest.approx(1 / out["tpot_s"])
    assert out["bound"] == "memory:hbm"
    assert {row["op"] for row in out["breakdown"]} >= {"qkv", "attention", "ffn_up", "ffn_down", "lm_head"}
    assert sum(row["time_s"] for row in out["breakdown"]) == pytest.approx(out["step_s"])


def test_memory_footprint_by_hand():
    step = estimate_step(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", batch=4, context=1023))
    assert step.memory.weights_bytes == 6_738_415_616 * 2
    assert step.memory.kv_bytes == 4 * 1024 * 2 * 32 * 4096 * 2  # seqs × (context + new token) × K,V × layers × h
    assert step.memory.capacity_bytes == 80 * 2**30


def test_prefill_reports_ttft_and_prompt_tokens(cli):
    out = _json(cli, "--model", "llama-3-8b", "--hardware", "h100-sxm", "--phase", "prefill", "--batch", "2",
                "--prompt-len", "1024")
    assert out["ttft_s"] == out["step_s"] and out["tpot_s"] is None
    assert out["tokens_per_s"] == pytest.approx(2 * 1024 / out["step_s"])
    assert out["bound"].startswith("compute:")


def test_pangu_ep8_spreads_experts_over_the_eight_npus(cli):
    out = _json(cli, "--model", "pangu-pro-moe", "--hardware", "atlas-800i-a2", "--ep", "8", "--weight-dtype", "int8",
                "--phase", "decode", "--batch", "512", "--context", "2048")
    assert out["devices"] == 8
    assert out["parallelism"] == {"tp": 1, "pp": 1, "dp": 8, "ep": 8, "expert_tp": 1}
    assert out["tokens_per_s_per_device"] == pytest.approx(out["tokens_per_s"] / 8)
    ops = {row["op"] for row in out["breakdown"]}
    assert {"ep_dispatch", "experts", "ep_combine", "shared_up"} <= ops
    # each NPU holds 64 / 8 experts: routed weights 48 layers × 8 × 3·5120·1344 bytes at int8
    r = resolve(Scenario(model="pangu-pro-moe", hardware="atlas-800i-a2", ep=8, weight_dtype="int8", batch=512))
    moe = next(t.op for t in build_trace(r).ops if isinstance(t.op, MoE))
    expert_bytes = next(o.bytes for o in moe.operands() if o.name == "experts")
    assert expert_bytes == pytest.approx(moe.experts_touched / 8 * 3 * 5120 * 1344)
    assert moe.experts_touched == pytest.approx(64, rel=1e-6)  # 512 tokens touch every expert


def test_mixtral_fp16_does_not_fit_one_h100(cli):
    result = cli("estimate", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--phase", "decode", "--batch",
                 "1", "--context", "2048", "--weight-dtype", "fp16")
    assert result.code == 2
    line = result.err.strip()
    assert len(line.splitlines()) == 1
    assert "does not fit" in line and "over by" in line
    # 46.70B × 2 B = 86.99 GiB of weights against 80 GiB
    assert "86.99 GiB" in line


def test_tensor_parallel_trace_has_its_all_reduces():
    r = resolve(Scenario(model="llama-3-70b", hardware="dgx-h100", tp=8, batch=64))
    trace = build_trace(r)
    reduces = [t for t in trace.ops if isinstance(t.op, Collective) and t.op.kind == "all_reduce"]
    # layer 0 (its attn_norm has no residual yet) on its own, then layers 1-79: two all-reduces a layer
    assert [(t.op.label, t.repeat) for t in reduces] == [("tp_all_reduce", 1), ("ffn_all_reduce", 1),
                                                         ("tp_all_reduce", 79), ("ffn_all_reduce", 79)]
    assert all(t.op.group == 8 for t in reduces)
    assert reduces[0].op.size_bytes == 64 * 8192 * 2  # batch tokens × hidden × bf16
    assert all(t.chips == tuple(range(8)) for t in trace.ops)


def test_pipeline_stages_send_between_them():
    r = resolve(Scenario(model="llama-2-7b", hardware="dgx-h100", pp=4, devices=4, batch=4))
    trace = build_trace(r)
    sends = [t for t in trace.ops if t.op.label == "pp_send"]
    assert [t.stage for t in sends] == [1, 2, 3]
    # 32 layers, 8 a stage; the first stage's layer 0 runs on its own (no residual yet), the later stages' first
    # layers receive the residual with the hidden states
    assert [(t.stage, t.repeat) for t in trace.ops if t.op.label == "qkv"] == [(0, 1), (0, 7), (1, 8), (2, 8), (3, 8)]


def test_single_chip_spec_with_devices_builds_chips_over_its_link():
    r = resolve(Scenario(model="llama-2-7b", hardware="h100-sxm", devices=2, tp=2))
    assert r.system is not None and r.system.chips == 2
    h100 = load_hardware("h100-sxm")
    assert r.system.interconnect.bandwidth_per_direction == h100.links[0].bandwidth_per_direction
    assert r.system.interconnect.links_per_member == h100.links[0].count


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--hardware", "dgx-h100", "--tp", "3"], "must divide the 8 devices"),
        (["--hardware", "dgx-h100", "--tp", "2", "--pp", "2", "--dp", "3"], "not the 8 devices"),
        (["--hardware", "dgx-h100", "--pp", "3", "--devices", "6"], "must divide the 32 layers"),
        (["--hardware", "dgx-h100", "--devices", "16"], "has 8 chips"),
        (["--hardware", "stm32f746", "--devices", "2"], "declares no chip-to-chip links"),
        (["--hardware", "dgx-h100", "--tp", "8", "--ep", "3"], "ep (3) × expert_tp"),
        (["--hardware", "h100-sxm", "--weight-dtype", "int3"], "unknown dtype"),
        (["--hardware", "h100-sxm", "--batch", "0"], "greater than 0"),
        (["--hardware", "dgx-h100", "--batch", "4"], "smaller than dp"),
        (["--hardware", "h100-sxm", "--context", "4096"], "exceeds llama-2-7b's max_context (4096)"),
    ],
)
def test_inconsistent_flags_exit_2(cli, argv, needle):
    result = cli("estimate", "--model", "llama-2-7b", *argv)
    assert result.code == 2, result.out
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_scenario_file_and_flag_override(cli, tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text("model: llama-2-7b\nhardware: a100-sxm-80gb\nphase: decode\nbatch: 4\ncontext: 1024\n")
    from_file = _json(cli, "--scenario", str(path))
    assert from_file["batch"] == 4
    overridden = _json(cli, "--scenario", str(path), "--batch", "8")
    assert overridden["batch"] == 8
    path.write_text("model: llama-2-7b\nhardware: a100-sxm-80gb\nbtach: 4\n")
    result = cli("estimate", "--scenario", str(path))
    assert result.code == 2 and "did you mean 'batch'" in result.err


def test_lut_gemm_on_a_cpu_replaces_low_bit_gemms(cli):
    out = _json(cli, "--model", "bitnet-b1.58-3b", "--hardware", "raspberry-pi-5", "--lut-gemm", "--phase", "decode",
                "--context", "128")
    bounds = {row["op"]: row["bound"] for row in out["breakdown"]}
    assert bounds["qkv"] in ("lut", "memory:lpddr4x")
    step = estimate_step(Scenario(model="bitnet-b1.58-3b", hardware="raspberry-pi-5", lut_gemm=True, context=128))
    assert {type(t.op).__name__ for t in step.trace.ops} >= {"LutGemm", "Gemm"}  # the 16-bit LM head stays a GEMM


def test_step_roofline_plots_every_op(cli, tmp_path):
    out = tmp_path / "step.png"
    result = cli("roofline", "--model", "llama-2-7b", "--hardware", "h100-sxm", "--batch", "8", "-o", str(out),
                 "--format", "json")
    assert result.code == 0, result.err
    labels = {row["op"] for row in json.loads(result.out)}
    assert {"qkv", "attention", "ffn_up", "lm_head"} <= labels
    assert out.exists()


def test_speculative_verification_counts_expected_accepted_tokens(cli):
    # k = 3 verified tokens (2 drafts + the bonus), α = 0.5: E = (1 − 0.5³)/(1 − 0.5) = 1 + 0.5 + 0.25 = 1.75
    argv = ("--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--phase", "decode", "--batch", "4",
            "--context", "1024", "--decode-tokens", "3")
    out = _json(cli, *argv, "--acceptance", "0.5")
    assert out["tpot_s"] == pytest.approx(out["step_s"] / 1.75)
    assert out["tokens_per_s"] == pytest.approx(4 * 1.75 / out["step_s"])
    assert out["tokens_per_s"] * out["tpot_s"] == pytest.approx(4)  # each sequence: one token per tpot_s
    default = _json(cli, *argv)  # α = 0.7: E = 1 + 0.7 + 0.49 = 2.19
    assert default["tpot_s"] == pytest.approx(default["step_s"] / 2.19)
    certain = estimate_step(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", decode_tokens=3, acceptance=1.0))
    assert certain.tokens_per_sequence == 3  # every draft accepted: k tokens
    plain = estimate_step(Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", acceptance=0.0))
    assert plain.tokens_per_sequence == 1 and plain.summary()["tpot_s"] == plain.step_s  # k = 1: one token
    bad = cli("estimate", *argv, "--acceptance", "1.5")
    assert bad.code == 2 and "acceptance" in bad.err and len(bad.err.strip().splitlines()) == 1


def test_analytic_step_pipelines_micro_batches_through_stages_and_sends():
    # pp = 4, m = 8: T_s = Σ repeat × op time over stage s's ops but its send; send_s = the send into stage s
    r = resolve(Scenario(model="llama-2-7b", hardware="dgx-h100", pp=4, devices=4, micro_batches=8, batch=32))
    step = estimate_step(r)
    stage_s, send_s = [0.0] * 4, [0.0] * 4
    for t, c in zip(step.trace.ops, step.costs, strict=True):
        if t.op.label == "pp_send":
            send_s[t.stage] += c.time_s
        else:
            stage_s[t.stage] += t.repeat * c.time_s
    want = sum(stage_s) + sum(send_s) + 7 * max(stage_s + send_s)
    assert step.analytic_s == pytest.approx(want, rel=1e-12)
    one = estimate_step(r.scenario.model_copy(update={"micro_batches": 1, "batch": 4}))
    assert one.analytic_s == pytest.approx(sum(c.time_s * t.repeat for c, t in zip(one.costs, one.trace.ops,
                                                                                  strict=True)), rel=1e-12)

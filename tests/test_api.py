"""The Python API: results match the cost model's hand-derived numbers and the CLI's JSON."""

import json

import pytest

import perfsim as ps
import perfsim.hardware
from perfsim.errors import PerfsimError


def test_hardware_is_callable_after_the_package_is_imported():
    assert ps.hardware("h100-sxm").name == "h100-sxm"
    spec = ps.hardware("mi300x")
    assert ps.hardware(spec) is spec


def test_op_estimate_by_hand():
    # 4096³ in 128×256×64 tiles: 32·16 = 512 tiles on 132 SMs = 4 waves of one 2·128·256·4096-FLOP tile each, at
    # one SM's 989.4 TFLOP/s × calibrated 0.7009 / 132 = 5.2536 TFLOP/s: 204.38 µs, plus the calibrated 2.43 µs launch
    result = ps.estimate("gemm m=4096 n=4096 k=4096 dtype=bf16", "h100-sxm")
    assert result.time_s == pytest.approx(4 * 2 * 128 * 256 * 4096 / (989.4e12 * 0.7009 / 132) + 2.43e-6, rel=1e-3)
    assert result.bound == "compute:bf16"
    frame = result.to_frame()
    assert list(frame["time_s"]) == [result.time_s] and frame["hardware"][0] == "h100-sxm"


def test_estimate_on_a_changed_spec():
    h100 = ps.hardware("h100-sxm")
    faster = h100.model_copy(update={"memory": [
        level.model_copy(update={"bandwidth": 2 * level.bandwidth}) if level.name == "hbm" else level
        for level in h100.memory]})
    gemv = "gemm m=1 n=8192 k=8192 dtype=bf16"
    # HBM-bound: x, W, y streamed once at 3.35 TB/s × 0.8866 (or twice that), plus the same 2.43 µs launch
    stream = (8192 + 8192 * 8192 + 8192) * 2 / (3.35e12 * 0.8866)
    ratio = (stream + 2.43e-6) / (stream / 2 + 2.43e-6)
    assert ps.estimate(gemv, h100).time_s / ps.estimate(gemv, faster).time_s == pytest.approx(ratio, rel=1e-6)


def test_step_matches_the_cli_json(cli):
    step = ps.step("llama-2-7b", "a100-sxm-80gb", phase="decode", batch=4, context=1024)
    shown = json.loads(cli("estimate", "--model", "llama-2-7b", "--hardware", "a100-sxm-80gb", "--batch", "4",
                           "--context", "1024", "--format", "json").out)
    assert shown["step_s"] == pytest.approx(step.step_s, rel=1e-12)
    frame = step.to_frame()  # one analytic step is the sum of its ops
    assert frame.time_s.sum() == pytest.approx(step.step_s, rel=1e-9)


def test_scenario_mapping_and_wrong_settings():
    result = ps.estimate({"model": "llama-3-8b", "phase": "prefill", "prompt_len": 256}, "h100-sxm")
    assert result.summary["ttft_s"] == result.step_s
    with pytest.raises(PerfsimError, match="tp cannot apply to an op estimate"):
        ps.estimate("gemm m=1 n=8 k=8", "h100-sxm", tp=2)


def test_serve_frame_has_one_row_per_request():
    served = ps.serve("llama-2-7b", "a100-sxm-80gb", rate=2, requests=20, slo_tpot="50ms")
    frame = served.to_frame()
    assert len(frame) == served.summary["requests"] == 20
    assert frame.ttft_s.quantile(0.5) == pytest.approx(served.summary["ttft_s"]["p50"], rel=1e-12)
    assert served.plot().axes
    with pytest.raises(PerfsimError, match="--slo-ttft"):
        ps.serve("llama-2-7b", "a100-sxm-80gb", requests=5, slo_ttft="-1s")


def test_flat_record_puts_units_last_and_names_after_a_unitless_key():
    from perfsim.api import flat_record

    record = {"memory_s": {"hbm": 1.0}, "bytes_per_level": {"l2": 2}, "ttft_s": {"p50": 3.0},
              "memory": {"kv_bytes": 4}, "resource_s": {"compute:bf16": 5.0}, "breakdown": [{"op": "x"}]}
    assert flat_record(record) == {"memory_hbm_s": 1.0, "l2_bytes": 2, "ttft_p50_s": 3.0, "memory_kv_bytes": 4,
                                   "resource_compute_bf16_s": 5.0}


def test_a_model_step_on_a_roofline_for_each_device():
    roof = ps.roofline("h100-sxm", compare=["mi300x"], scenario={"model": "llama-2-7b", "batch": 8})
    devices = {row["device"] for row in roof.points}
    assert devices == {"h100-sxm", "mi300x"}
    # the same distinct ops on both chips: qkv, attention, ffn_up, lm_head, ... (collectives left out)
    per_device = {d: {row["op"] for row in roof.points if row["device"] == d} for d in devices}
    assert per_device["h100-sxm"] == per_device["mi300x"] >= {"qkv", "attention", "ffn_up", "lm_head"}


def test_cores_limits_an_op_but_not_a_collective():
    # Pi 5 NEON: 16 fp32 FLOP/cycle/core at its sustained 2.398 GHz (CAL-FMA-PI5); 2·512³ FLOP on 1 core =
    # 268,435,456 / 38.37e9 s
    one = ps.estimate("gemm m=512 n=512 k=512 dtype=fp32", "raspberry-pi-5", cores=1)
    assert one.cost.compute_s == pytest.approx(2 * 512**3 / (16 * 2.398e9))
    with pytest.raises(PerfsimError, match="does not apply to a collective"):
        ps.estimate("all_reduce bytes=1024", "mi300x-node", cores=2)


def test_spec_listings_and_schema():
    from perfsim import api

    rows = {row["name"]: row for row in api.hardware_list()}
    assert rows["dgx-h100"]["chips"] == 8 and rows["dgx-h100"]["origin"] == "shipped"
    assert {row["name"] for row in api.model_list()} >= {"llama-3-70b", "mixtral-8x7b"}
    llama = api.model_info("llama-3-70b")
    # Llama 3 70B: 64 query heads, 8 KV heads of 8192 / 64 = 128, vocab 128256, untied embeddings
    assert (llama["heads"], llama["kv_heads"], llama["head_dim"], llama["vocab"]) == (64, 8, 128, 128256)
    assert api.schema("op")["discriminator"]
    with pytest.raises(PerfsimError, match="'nope' is not one of hardware, op, model, scenario, case"):
        api.schema("nope")


def test_validation_files_are_written(tmp_path):
    from perfsim.validation.case import CASE_DIR

    written = ps.validate([CASE_DIR / "amd_mi300x.yaml"]).write(tmp_path / "out")
    assert [p.name for p in written] == ["report.json", "report.csv", "report.md", "predicted_vs_published.png"]
    assert all(p.is_file() for p in written)
    assert json.loads(written[0].read_text())["summary"]["n_error"] == 0

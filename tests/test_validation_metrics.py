"""The case metrics of the validation harness: energy, fits, serving, ratios and op sequences, each checked
against numbers derived by hand or against the independent path that computes them (cost(), ps.serve)."""

import json
import math
from pathlib import Path

import pytest

import perfsim as ps
from perfsim.cost import cost
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models.scenario import Scenario
from perfsim.ops import Reduce, parse_op
from perfsim.specfile import validate
from perfsim.validation import serving as serving_module
from perfsim.validation.case import Case
from perfsim.validation.classes import hardware_class
from perfsim.validation.predict import predict
from perfsim.validation.report import case_row, validation_report

H100_TDP_W = 700.0  # hardware_specs/h100-sxm.yaml power.tdp
H100_BF16_DENSE = 989.4e12  # FLOP/s, the tensor-core peak the roofline binds a large bf16 GEMM to
GEMM = "gemm m=4096 n=4096 k=4096 dtype=bf16"
GEMV = "gemm m=1 n=8192 k=8192 dtype=bf16 weight_shared=true"


def case(**fields) -> Case:
    base = {"id": "T-1", "source": "a unit test", "status": "verified", "role": "validation", "published": 1.0}
    return validate(Case, {**base, **fields}, "test")


def value(**fields):
    return predict(case(**fields)).value


# --- energy -------------------------------------------------------------------------------------------------------


def test_energy_of_a_gemm_on_an_h100_is_tdp_times_its_time():
    # 512 tiles of 128×256 in 4 waves on 132 SMs: each SM 4 × 2·128·256·4096 FLOP at 989.4 TFLOP/s × 0.7009
    # (calibrated) / 132 = 204.384 µs, plus the calibrated 2.43 µs launch; the power model draws the 700 W TDP
    # through both: E = 700 W × 206.814 µs = 0.14477 J
    seconds = 4 * 2 * 128 * 256 * 4096 / (H100_BF16_DENSE * 0.7009 / 132) + 2.43e-6
    energy = value(hardware="h100-sxm", workload={"op": GEMM}, metric="energy_j")
    assert energy == pytest.approx(H100_TDP_W * seconds, rel=1e-9)
    assert energy == pytest.approx(0.14477, abs=1e-5)
    assert value(hardware="h100-sxm", workload={"op": GEMM}, metric="average_power_w") == pytest.approx(700, rel=1e-9)


def test_energy_per_frame_divides_by_the_batch():
    # a batched GEMM of 2 frames: the sequence's joules over its batch of 2
    op = "gemm m=4096 n=4096 k=4096 batch=2 dtype=bf16"
    energy = value(hardware="h100-sxm", workload={"op": op}, metric="energy_j")
    assert energy == pytest.approx(H100_TDP_W * cost(parse_op(op), load_hardware("h100-sxm")).time_s, rel=1e-12)
    assert value(hardware="h100-sxm", workload={"op": op}, metric="energy_per_frame_j") == pytest.approx(energy / 2)


def test_step_energy_metrics_are_the_step_summary():
    scenario = {"model": "llama-3-8b", "phase": "decode", "batch": 8, "context": 1024}
    step = ps.step("llama-3-8b", "h100-sxm", phase="decode", batch=8, context=1024).summary
    # a decode step of 8 sequences gives 8 tokens and serves 8 frames: both divide the step's joules by 8
    for metric, expected in (("energy_j", step["energy_j"]), ("joules_per_token", step["energy_j"] / 8),
                             ("energy_per_frame_j", step["energy_j"] / 8),
                             ("average_power_w", step["energy_j"] / step["step_s"])):
        assert value(hardware="h100-sxm", workload={"scenario": scenario}, metric=metric) == pytest.approx(expected)


def test_unknown_energy_is_an_error_row_naming_the_cause():
    # an all-reduce over 4 of dgx-h100's 8 chips leaves 4 waiting, and the spec has no idle power to price them
    row = case_row(case(hardware="dgx-h100", workload={"op": "all_reduce bytes=16384 group=4"}, metric="energy_j"))
    assert row["result"] == "error"
    assert row["reason"] == ("energy_j is unknown on h100-sxm: its power model has no idle power, which a waiting "
                             "chip needs")


# --- sequences and the reduce op ----------------------------------------------------------------------------------


def test_a_sequence_costs_its_ops_in_order():
    # a tensor-parallel GEMV then the all-reduce of its 8192 bf16 outputs (16 KiB) across the 8 H100s
    ops = [GEMV, "all_reduce bytes=16384"]
    dgx = load_hardware("dgx-h100")
    gemv, reduce = (cost(parse_op(text), dgx) for text in ops)
    seconds = gemv.time_s + reduce.time_s
    assert value(hardware="dgx-h100", workload={"ops": ops}, metric="latency_s") == pytest.approx(seconds, rel=1e-12)
    # both ops run on all 8 chips at the 700 W TDP (the GEMV's launch included): 8 × 700 W × the time
    energy = value(hardware="dgx-h100", workload={"ops": ops}, metric="energy_j")
    assert energy == pytest.approx(8 * H100_TDP_W * seconds, rel=1e-9)
    flops = 2 * 8192 * 8192 + 16384 / 2  # the GEMV's multiply-adds, then one add per bf16 element reduced
    assert value(hardware="dgx-h100", workload={"ops": ops}, metric="flops_per_s") == pytest.approx(flops / seconds)


def test_a_collective_on_part_of_a_system_leaves_chips_waiting():
    # an all-reduce over 4 of the 8 chips: the other 4 wait, and waiting needs the idle power the spec lacks
    row = case_row(case(hardware="dgx-h100", workload={"ops": [GEMV, "all_reduce bytes=16384 group=4"]},
                        metric="energy_j"))
    assert row["result"] == "error" and "no idle power" in row["reason"]


def test_reduce_counts():
    # a row of 4096 takes 4095 adds; x (1024 × 4096 fp32) is read once and 1024 sums written once
    op = parse_op("reduce rows=1024 cols=4096 op=sum dtype=fp32")
    assert isinstance(op, Reduce)
    assert op.flops == 1024 * 4095
    assert op.bytes == 4 * (1024 * 4096 + 1024)
    intensity = value(hardware="h100-sxm", workload={"op": "reduce rows=1024 cols=4096 op=max dtype=fp32"},
                      metric="intensity_flop_per_byte")
    assert intensity == pytest.approx(4095 / (4 * 4097))


def test_reduce_has_a_passing_reference_check():
    from perfsim.reference.registry import run_checks

    row = next(r for r in run_checks() if r["op"] == "reduce")
    assert row["passed"] and row["counts_match"]


# --- fits ---------------------------------------------------------------------------------------------------------


def test_an_op_fits_the_sram_of_an_mcu():
    # int8 conv 16→16 channels on 32×32 with a 3×3 kernel: x 16·32·32 = 16,384 B, w 16·16·9 = 2,304 B,
    # y 16,384 B: 35,072 B of the STM32F746's 320 KiB (327,680 B) of SRAM
    conv = "conv2d in_channels=16 out_channels=16 height=32 width=32 kernel=3 padding=1 dtype=int8"
    row = case_row(case(hardware="stm32f746", workload={"op": conv, "memory_level": "sram"}, metric="fits",
                        published=True))
    assert (row["predicted"], row["peak_bytes"], row["capacity_bytes"]) == (True, 35072, 327680)
    assert row["rel_error"] == 0 and row["bound"] == "memory:sram" and row["family"] == "fit"
    # 64 channels on 64×64: x and y 64·64·64 = 262,144 B each, over 320 KiB; the published 'fits' is wrong by 1
    big = conv.replace("16", "64").replace("32", "64")
    row = case_row(case(hardware="stm32f746", workload={"op": big, "memory_level": "sram"}, metric="fits",
                        published=True))
    assert row["predicted"] is False and row["peak_bytes"] == 2 * 262144 + 64 * 64 * 9 and row["rel_error"] == -1


def test_a_model_does_not_fit_one_h100():
    # Llama-3-70B in bf16: ~70.6e9 parameters × 2 B ≈ 141 GB of weights, over the 80 GiB (85.9e9 B) of HBM
    row = case_row(case(hardware="h100-sxm", workload={"scenario": {"model": "llama-3-70b", "phase": "decode"}},
                        metric="fits", published=False))
    assert row["predicted"] is False and row["rel_error"] == 0
    assert row["capacity_bytes"] == 80 * 2**30 and row["peak_bytes"] > 2 * 70e9


# --- ratios -------------------------------------------------------------------------------------------------------


def test_a_ratio_is_the_two_predictions_divided():
    gemv = {"op": "gemm m=1 n=32768 k=32768 dtype=fp16 weight_shared=true"}
    c = case(metric="ratio", numerator={"hardware": "a100-sxm-80gb", "workload": gemv, "metric": "latency_s"},
             denominator={"hardware": "h100-sxm", "workload": gemv, "metric": "latency_s"})
    a100, h100 = (cost(parse_op(gemv["op"]), load_hardware(h)).time_s for h in ("a100-sxm-80gb", "h100-sxm"))
    row = case_row(c)
    assert row["predicted"] == pytest.approx(a100 / h100, rel=1e-12)
    assert (row["hardware"], row["kind"], row["hardware_class"], row["family"]) == (
        "a100-sxm-80gb", "accelerator", "gpu", "ratio")


def test_a_ratio_band_spans_both_sides_ranges():
    # the M3 Max's clock is a range; the M2 Ultra's is not: the band is the quotient at each end of the M3 Max
    gemm = {"op": "gemm m=102400 n=1024 k=512 dtype=fp32 weight_shared=true"}
    sides = {"numerator": {"hardware": "m3-max-gpu", "workload": gemm, "metric": "latency_s"},
             "denominator": {"hardware": "m2-ultra-gpu", "workload": gemm, "metric": "latency_s"}}
    p = predict(case(metric="ratio", **sides))
    m3 = predict(case(hardware="m3-max-gpu", workload=gemm, metric="latency_s"))
    m2 = predict(case(hardware="m2-ultra-gpu", workload=gemm, metric="latency_s")).value
    assert (p.low, p.value, p.high) == pytest.approx((m3.low / m2, m3.value / m2, m3.high / m2))
    assert p.low < p.high


def test_speedup_is_still_the_baseline_time_over_the_workload_time():
    row = next(r for r in validation_report()["cases"] if r["id"] == "SMX-01")
    spec = load_hardware("skylake-x-avx512")
    op = "softmax rows=16 cols=1048576 dtype=fp32 variant={} write_allocate=true"
    base, fast = (cost(parse_op(op.format(v)), spec).time_s for v in ("three_pass_recompute", "two_pass"))
    assert row["predicted"] == pytest.approx(base / fast, rel=1e-12) and row["family"] == "ratio"


# --- serving ------------------------------------------------------------------------------------------------------

SCENARIO = {"model": "llama-3-8b"}


def test_one_request_alone_is_one_prefill_then_decode_steps():
    # one request at t = 0: its TTFT is one prefill of 512 tokens; E2E = TTFT + 3 TPOTs (4 output tokens);
    # throughput = 4 tokens / E2E
    serve = {"arrivals": "burst", "requests": 1, "prompt_len": 512, "output_len": 4}
    got = {m: value(hardware="h100-sxm", workload={"scenario": SCENARIO}, metric=m, serve=serve)
           for m in ("ttft_s", "tpot_s", "e2e_s", "throughput_tokens_per_s")}
    prefill = ps.step("llama-3-8b", "h100-sxm", phase="prefill", batch=1, prompt_len=512).step_s
    assert got["ttft_s"] == pytest.approx(prefill, rel=1e-9)
    assert got["e2e_s"] == pytest.approx(got["ttft_s"] + 3 * got["tpot_s"], rel=1e-12)
    assert got["throughput_tokens_per_s"] == pytest.approx(4 / got["e2e_s"], rel=1e-12)


def test_serving_percentiles_match_ps_serve():
    serve = {"rate": 5, "requests": 40, "prompt_len": 256, "output_len": 32, "percentile": 90, "seed": 3}
    frame = ps.serve("llama-3-8b", "h100-sxm", rate=5, requests=40, prompt_len=256, output_len=32, seed=3).to_frame()
    for metric in ("ttft_s", "tpot_s", "e2e_s"):
        expected = frame[metric].quantile(0.9)  # pandas' linear interpolation, as numpy's percentile
        assert value(hardware="h100-sxm", workload={"scenario": SCENARIO}, metric=metric, serve=serve) == \
            pytest.approx(expected, rel=1e-12)


SLO = {"requests": 60, "prompt_len": 512, "output_len": 16, "percentile": 90, "slo_ttft_s": 0.05}


def test_max_rate_meeting_slo_bisects_to_the_tolerance(monkeypatch):
    calls = []
    original = serving_module.simulate
    monkeypatch.setattr(serving_module, "simulate", lambda *args: calls.append(args[2]) or original(*args))
    c = case(hardware="h100-sxm", workload={"scenario": SCENARIO}, metric="max_rate_meeting_slo",
             serve={**SLO, "rate_search": [1, 1000]})
    rate = predict(c).value
    # the two ends, then ⌈log2(ln 1000 / ln 1.01)⌉ = 10 halvings of the bracket's log-width
    assert len(calls) == 2 + math.ceil(math.log2(math.log(1000) / math.log(1 + serving_module.RATE_TOLERANCE)))
    # the answer meets the SLO, and the lowest rate tried above it, within 1 % of it, misses it
    scenario = validate(Scenario, {**SCENARIO, "hardware": "h100-sxm"}, "test")
    above = min(r for r in calls if r > rate)
    assert above <= rate * (1 + serving_module.RATE_TOLERANCE)
    assert serving_module.missed_slo(scenario, c.serve, rate) is None
    assert serving_module.missed_slo(scenario, c.serve, above) == "slo_ttft_s"


@pytest.mark.parametrize(("search", "needle"), [([500, 1000], "the low end, 500 requests/s, already misses"),
                                                 ([0.1, 1], "the high end, 1 requests/s, still meets")])
def test_max_rate_search_must_bracket_the_answer(search, needle):
    row = case_row(case(hardware="h100-sxm", workload={"scenario": SCENARIO}, metric="max_rate_meeting_slo",
                        serve={**SLO, "rate_search": search}))
    assert row["result"] == "error" and needle in row["reason"]


# --- schema errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"metric": "ratio", "numerator": {"hardware": "h100-sxm", "workload": {"op": GEMM}, "metric": "latency_s"}},
         "metric 'ratio' needs 'numerator' and 'denominator'"),
        ({"metric": "fits", "hardware": "h100-sxm", "workload": {"op": GEMM}, "published": 1},
         "published: true or false for metric fits"),
        ({"metric": "latency_s", "hardware": "h100-sxm", "workload": {"op": GEMM}, "published": True},
         "published: true or false for metric fits"),
        ({"metric": "e2e_s", "hardware": "h100-sxm", "workload": {"scenario": SCENARIO}},
         "metric e2e_s does not apply to a scenario without a serve: block"),
        ({"metric": "ttft_s", "hardware": "h100-sxm", "workload": {"scenario": SCENARIO}, "serve": {"requests": 5}},
         "metric ttft_s with poisson arrivals needs serve.rate"),
        ({"metric": "max_rate_meeting_slo", "hardware": "h100-sxm", "workload": {"scenario": SCENARIO},
          "serve": {"rate_search": [1, 10]}}, "needs serve.slo_ttft_s or serve.slo_tpot_s"),
        ({"metric": "ttft_s", "hardware": "h100-sxm", "workload": {"scenario": SCENARIO},
          "serve": {"rate": 1, "prompt_len": "zipf:2"}}, "serve.prompt_len: unknown distribution 'zipf'"),
        ({"metric": "bus_bandwidth_bytes_per_s", "hardware": "dgx-h100",
          "workload": {"ops": ["all_reduce bytes=8", "all_reduce bytes=16"]}}, "applies to one collective op"),
        ({"metric": "latency_s", "hardware": "h100-sxm", "workload": {"op": GEMM, "memory_level": "hbm"}},
         "workload.memory_level applies to metric fits"),
    ],
)
def test_bad_cases_are_one_line_errors(fields, needle):
    with pytest.raises(PerfsimError) as err:
        case(**fields)
    message = str(err.value)
    assert message.startswith("test: ") and needle in message and "\n" not in message


def test_a_memory_level_the_chip_lacks_exits_2(cli, tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n  - {id: X-1, source: a test, hardware: h100-sxm, metric: fits, published: true,\n"
                    "     workload: {op: 'gemm m=1 n=1 k=1', memory_level: sram},\n"
                    "     status: verified, role: validation}\n")
    result = cli("validate", str(path))
    assert result.code == 2
    assert "case X-1: workload.memory_level: h100-sxm has no level 'sram' (levels: l2, hbm)" in result.err


# --- classes and the summary --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("h100-sxm", "gpu"), ("mi300x-node", "gpu"), ("m2-ultra-gpu", "gpu"), ("ascend-910b", "npu"),
    ("atlas-800i-a2", "npu"), ("atlas-300i-duo", "npu"), ("m2-pro-cpu", "cpu"), ("cerebras-wse2", "wafer"),
    ("duplex-logic-pim", "pim"), ("gap8", "mcu"), ("zcu102-edge-moe", "fpga")])
def test_hardware_classes(name, expected):
    assert hardware_class(load_hardware(name)) == expected


FIELDS = {"n_cases", "n_scored", "median_abs_rel_error", "p90_abs_rel_error", "worst_case", "worst_factor_off",
          "n_unsupported", "n_error"}


def test_summary_by_class_in_the_json(cli):
    result = cli("validate", "--format", "json")
    data = json.loads(result.out)
    by_class = data["summary"]["by_class"]
    classes = {row["hardware_class"] for row in data["cases"]}
    assert set(by_class) == classes >= {"gpu", "npu", "cpu", "wafer", "pim", "mcu"}
    for group in by_class.values():
        assert FIELDS | {"by_family"} == set(group)
        assert all(set(scores) == FIELDS for scores in group["by_family"].values())
    pim = by_class["pim"]  # both PIM cases are identity checks: listed, nothing scored
    assert pim["n_scored"] == 0 and pim["median_abs_rel_error"] is None and pim["worst_case"] is None
    assert pim["n_cases"] == 2
    assert sum(g["n_cases"] for g in by_class.values()) == len(data["cases"])


def test_a_class_filter_keeps_only_its_cases():
    report = ps.validate(hardware_class="wafer").report
    assert {row["id"] for row in report["cases"]} == {"WAF-01-wse2", "WAF-03"}
    assert list(report["summary"]["by_class"]) == ["wafer"]
    with pytest.raises(PerfsimError, match="hardware class 'tpu' is not one of gpu, npu, cpu, wafer, pim, mcu, fpga"):
        validation_report(hardware_class="tpu")


# --- the docs page ------------------------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_cases_page_shows_each_example_file_as_it_is():
    page = (DOCS / "cases.md").read_text()
    files = sorted((DOCS / "examples" / "cases").glob("*.yaml"))
    assert {f.stem for f in files} == {"op", "scenario", "sequence", "serving", "energy", "fits", "ratio"}
    for path in files:
        assert f"```yaml\n{path.read_text()}```" in page, path.name
        assert f"$ perfsim validate docs/examples/cases/{path.name}" in page


def test_validate_class_filter_on_the_command_line(cli):
    result = cli("validate", "--class", "wafer", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert {row["hardware_class"] for row in data["cases"]} == {"wafer"} and set(data["summary"]["by_class"]) == {
        "wafer"}
    wrong = cli("validate", "--class", "wafr")
    assert wrong.code == 2 and wrong.err.startswith("perfsim: error: hardware class 'wafr'")

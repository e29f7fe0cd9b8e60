"""perfsim validate: every published case encoded, honest summaries, and guards against tuning."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from perfsim.hardware import SPEC_DIR
from perfsim.models import WORKLOAD_DIR
from perfsim.ops import COLLECTIVES, parse_op
from perfsim.validation.case import CASE_DIR, load_cases
from perfsim.validation.report import markdown, validation_report

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared" / "validation" / "published_cases.md"
# every id in shared/validation/published_cases.md; multi-value cases as ID-<suffix>
IDS = {
    "TMAC-01", "TMAC-05", "TMAC-05-1t", "TMAC-06", "MLX-01", "MLX-02", "MLX-03", "MLX-04", "MLX-06-m2-ultra",
    "MLX-06-m2", "MLX-06-m1-pro", "MLX-06-m3-max", "AMD-01", "CAL-RCCL-MI300X-8B", "CAL-RCCL-MI300X-16G", "RCCL-1M",
    "CAL-XGMI-MI300X", "CAL-HBM-H100", "CAL-HBM-A100", "SMX-01", "DX-03", "DX-04", "KVP-01", "KVP-02", "ODL-02",
    "ODL-03", "PN-01", "WAF-01-wse2", "WAF-01-a100", "WAF-03", "PG-01", "PG-02", "PG-02-b1",
}
FIRST_PASS = set(IDS)  # the cases the first model was judged on
# held-out cases added before the kernel-level GPU model and the collective protocols were built
IDS |= {
    "TRT-01-h100-128", "TRT-01-h100-2048", "TRT-02-h100-128", "TRT-02-h100-2048", "TRT-01-a100-128",
    "TRT-01-a100-2048", "TRT-02-a100-128", "TRT-02-a100-2048", "TRT-03-h100", "TRT-03-a100", "TRT-04-h100",
    "NIM-01-ttft-500", "NIM-01-ttft-5000", "NIM-01-tpot-500", "NIM-01-tpot-5000", "AMDV-01-b1", "AMDV-01-b4",
    "OCI-01-b1", "NCCL-H100-NVLS-32K", "NCCL-H100-NVLS-1M", "NCCL-H100-NVLS-4M", "NCCL-H100-NVLS-268M",
    "RCCL-MI300X-8M", "CAL-NVLS-H100-1K", "CAL-NVLS-H100-8G", "EDGEMOE-01-gpu", "EDGEMOE-02-cpu",
}
IDS |= {"CAL-GEMM-H100", "CAL-GEMM-A100"}  # GPU compute calibrations (validation/gpu_calibration.yaml)
# launch, Apple LPDDR5, M3 Max GEMM calibrations (gpu_calibration.yaml)
IDS |= {"CAL-GEMM-M3MAX", "CAL-LAUNCH-A100", "CAL-LAUNCH-H100", "CAL-LAUNCH-M3MAX", "CAL-LAUNCH-MI300X",
        "CAL-MEM-M1PRO", "CAL-MEM-M2", "CAL-MEM-M2ULTRA", "CAL-MEM-M3MAX"}
IDS |= {"CAL-HCCS-910B-AR8", "HCCS-910B-AR2", "HCCS-910B-AR4", "HCCS-910B-AG2", "HCCS-910B-AG4",
        "HCCS-910B-AG8"}  # Ascend HCCS (validation/ascend_hccs.yaml)
IDS |= {"CAL-MEM-310P", "CAL-GEMM-910B4-1"}  # Ascend calibrations (validation/ascend_calibration.yaml)
IDS |= {"TRAIN-MPT-7B-a100-8", "TRAIN-MPT-13B-a100-8", "TRAIN-MPT-30B-a100-8", "TRAIN-MPT-7B-h100-8",
        "TRAIN-MPT-30B-h100-8", "TRAIN-MPT-13B-h100-64", "TRAIN-MPT-70B-h100-64"}  # validation/training.yaml
IDS |= {"MOELENS-T2-a40", "MOELENS-T2-l40", "MOELENS-T2-a100"}  # MoE-Lens Eq. 2 identities (validation/moelens.yaml)
IDS |= {"CAL-GEMM-A40", "CAL-GEMM-A6000", "CAL-MEM-A40", "CAL-MEM-L40", "CAL-LAUNCH-A40",
        "CAL-LAUNCH-L40", "CAL-LAUNCH-A6000"}  # GA102 / AD102 calibrations (validation/gpu_calibration_ampere_ada.yaml)
IDS |= {"CAL-LAUNCH-M2", "CAL-LAUNCH-M2ULTRA"}  # M2-generation launch calibrations (apple_launch_calibration.yaml)
IDS |= {"CAL-FMA-PI5", "CAL-FMA-M2PRO"}  # CPU calibrations (validation/cpu_calibration.yaml)
IDS |= {"CAL-GEMM-GAP8"}  # MCU calibrations (validation/mcu_calibration.yaml)
IDS |= {"MLPERF41-AMD-offline", "MLPERF41-AMD-server", "MLPERF41-HPE-offline", "MLPERF41-HPE-server"}  # serving
REPORT = validation_report()


def test_every_published_id_is_encoded():
    ids = {row["id"] for row in REPORT["cases"]}
    assert ids == IDS
    if PUBLISHED.exists():  # the shared list beside the clone, when present
        listed = set(re.findall(r"\|\s*((?:[A-Z]+-)+[0-9A-Z]+)\s*\|", PUBLISHED.read_text()))
        assert all(any(i == j or i.startswith(j + "-") for i in ids) for j in listed), listed


def test_json_contract(cli):
    result = cli("validate", "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    for row in data["cases"]:
        assert {"id", "predicted", "predicted_low", "predicted_high", "published", "rel_error", "role", "status",
                "result", "bound"} <= set(row)
        assert row["result"] in ("ok", "unsupported", "error")
    assert {"median_abs_rel_error", "p90_abs_rel_error", "n_validation", "n_unsupported", "by_class",
            "by_family"} <= set(data["summary"])
    assert all({"hardware_class", "family", "peak_bytes", "capacity_bytes"} <= set(row) for row in data["cases"])


def test_unsupported_cases_name_their_missing_mechanism():
    unsupported = [r for r in REPORT["cases"] if r["result"] == "unsupported"]
    assert len(unsupported) <= 8
    assert all("needs" in r["reason"] for r in unsupported)
    assert REPORT["summary"]["n_error"] == 0


def test_first_pass_error_budget():
    scored = [r for r in REPORT["cases"] if r["id"] in FIRST_PASS and r["role"] == "validation" and r["result"] == "ok"]
    errors = sorted(abs(r["rel_error"]) for r in scored)
    assert len(scored) >= 20
    assert errors[(len(errors) - 1) // 2] <= 0.25  # the median (lower middle)
    ratios = [1 + r["rel_error"] for r in scored]  # predicted / published
    assert max(max(q, 1 / q) for q in ratios) <= 3.0


def test_error_budget_over_every_case():
    """A regression guard at today's level over all cases, held-out ones included (lower it as models improve;
    the worst case is Edge-MoE's FPGA-over-Xeon energy gain, 0.85× predicted against 4.90× published)."""
    summary = REPORT["summary"]
    assert summary["n_validation"] >= 49
    assert summary["median_abs_rel_error"] <= 0.25
    assert summary["worst_factor_off"] <= 6.0


def test_calibration_cases_reproduce_their_calibration_points():
    for row in REPORT["cases"]:
        if row["role"] == "calibration":
            assert abs(row["rel_error"]) <= 0.10, row["id"]


def test_ranges_give_a_band():
    mlx = next(r for r in REPORT["cases"] if r["id"] == "MLX-06-m3-max")  # M3 Max: a range of GPU clocks
    assert mlx["predicted_low"] < mlx["predicted_high"]
    assert mlx["predicted_low"] <= mlx["predicted"] <= mlx["predicted_high"]


def test_no_spec_names_a_validation_case():
    validation_ids = {c.id for c in load_cases() if c.role == "validation"}
    for path in [*SPEC_DIR.glob("*.yaml"), *WORKLOAD_DIR.glob("*.yaml")]:
        text = path.read_text()
        named = {i for i in validation_ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text)}
        assert not named, f"{path.name} names validation case(s) {named}"


MICROBENCHMARKS = {"gemm", "elementwise", *COLLECTIVES}
"""What a calibration may measure: a GEMM, a stream copy or triad, a collective (a launch latency is the small
end of one of these)."""


def test_calibration_cases_are_few_microbenchmarks():
    """Calibration cases are single-op microbenchmarks: at most 2 per hardware and op kind (the two ends of one
    curve) and at most 3 per hardware. Three today: mi300x-node (the two ends of RCCL's all-reduce curve, xGMI
    alpha and efficiency, and TransferBench's all-to-all link rate, which checks that efficiency and sets nothing),
    a100-sxm-80gb, h100-sxm, a40 and m3-max-gpu (a big GEMM, a stream copy and a launch latency, one field each).
    Every other hardware holds at most 2."""
    per_hardware: Counter = Counter()
    per_kind: Counter = Counter()
    for case in load_cases():
        if case.role != "calibration":
            continue
        assert case.workload is not None and case.workload.op is not None, f"{case.id}: not a single op"
        kind = parse_op(case.workload.op).kind
        assert kind in MICROBENCHMARKS, f"{case.id}: {kind} is not a microbenchmark"
        per_hardware[case.hardware] += 1
        per_kind[case.hardware, kind] += 1
    assert max(per_kind.values()) <= 2, per_kind
    assert max(per_hardware.values()) == 3
    assert {hardware for hardware, n in per_hardware.items() if n > 2} == {"mi300x-node", "a100-sxm-80gb", "a40",
                                                                               "h100-sxm", "m3-max-gpu"}


def test_case_ids_named_by_calibrations_are_calibration_cases():
    roles = {c.id: c.role for c in load_cases()}
    for path in SPEC_DIR.glob("*.yaml"):
        for named in re.findall(r"\b((?:CAL|AMD)-[A-Z0-9-]+)", path.read_text()):
            base = next((i for i in roles if i == named or i.startswith(named + "-")), None)
            assert base is not None and roles[base] == "calibration", f"{path.name}: {named}"


def test_docs_report_is_current():
    committed = (ROOT / "docs" / "validation" / "report.md").read_text()
    assert committed == markdown(REPORT), "run `perfsim validate -o docs/validation`"


def test_output_dir_and_plot(cli, tmp_path):
    result = cli("validate", str(CASE_DIR / "amd_mi300x.yaml"), "-o", str(tmp_path / "out"))
    assert result.code == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"report.json", "report.csv", "report.md", "predicted_vs_published.png"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("cases:\n  - id: X-1\n    sorce: s\n", "did you mean 'source'"),
        ("cases: [1, 2\n", "malformed YAML"),
        ("cases:\n  - {id: X-1, source: paper, hardware: h100-sxm, workload: {op: 'gemm m=1 n=1 k=1'},"
         " metric: speedup, published: 1, status: verified, role: validation}\n", "needs 'versus'"),
    ],
)
def test_bad_case_files_exit_2(cli, tmp_path, text, needle):
    path = tmp_path / "cases.yaml"
    path.write_text(text)
    result = cli("validate", str(path))
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1


GOOD_CASE = {"id": "X-1", "source": "a paper", "hardware": "h100-sxm", "workload": "{op: 'gemm m=1 n=1 k=1'}",
             "metric": "latency_s", "published": "1", "status": "verified", "role": "validation"}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"workload": "{op: 'gemm m=1 n=1'}"}, "case X-1: op 'gemm m=1 n=1': k: missing required field"),
        ({"hardware": "h100-sxn"}, "case X-1: unknown hardware 'h100-sxn' (did you mean 'h100-sxm'?)"),
        ({"workload": "{scenario: {model: llama-3-8b, tp: 3}}"}, "case X-1: tp (3) × pp (1) must divide the 1 devices"),
        ({"workload": "{scenario: {model: llama-3-8b, batch: 0}}"}, "case X-1: scenario: batch: Input should be"),
        ({"metric": "flops_per_s", "workload": "{scenario: {model: llama-3-8b}}"},
         "case X-1: metric flops_per_s does not apply to a scenario"),
        ({"published": ".nan"}, "case X-1: published: Input should be a finite number"),
        ({"published": "-1"}, "case X-1: published: Input should be greater than 0"),
        ({"published": "0"}, "case X-1: published: Input should be greater than 0"),
    ],
)
def test_a_broken_case_is_an_error_exit_naming_file_and_id(cli, tmp_path, changes, needle):
    path = tmp_path / "cases.yaml"
    fields = {**GOOD_CASE, **changes}
    path.write_text("cases:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in fields.items()) + "\n")
    result = cli("validate", str(path), "--format", "json")
    assert result.code == 2, result.out
    assert result.out == ""
    assert f"cases.yaml: {needle}" in result.err and len(result.err.strip().splitlines()) == 1


def test_a_repeated_case_id_names_both_files(cli, tmp_path):
    text = "cases:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in GOOD_CASE.items()) + "\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    result = cli("validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert result.code == 2
    assert "b.yaml: case X-1: the id is already used in " in result.err and "a.yaml" in result.err


def test_a_good_case_file_scores_without_nan(cli, tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in GOOD_CASE.items()) + "\n")
    result = cli("validate", str(path), "--format", "json")
    assert result.code == 0
    data = json.loads(result.out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert data["summary"]["n_validation"] == 1 and data["cases"][0]["result"] == "ok"

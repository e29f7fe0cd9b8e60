"""The validation report: every case predicted, its error, and an honest summary per hardware class.

rel_error = (predicted − published) / published; for `fits`, predicted − published with true = 1 and
false = 0 (0 when the verdict agrees, ±1 when not). Medians, p90s and the worst factor off are taken over
validation-role cases with a result; a fit verdict is right or wrong, not off by a factor, so it counts in
its own family and stays out of the overall and per-class figures.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.validation.case import FAMILIES, Case, family, load_cases
from perfsim.validation.classes import HARDWARE_CLASSES, check_class, class_of
from perfsim.validation.predict import check_inputs, predict


def case_row(case: Case) -> dict[str, object]:
    """One report row; `result` is ok, unsupported (with the missing mechanism) or error (with the message)."""
    hardware = case.reported_hardware
    row: dict[str, object] = {"id": case.id, "hardware": hardware, "kind": _kind(hardware),
                              "hardware_class": class_of(hardware), "metric": case.metric,
                              "family": family(case.metric, case.served), "published": case.published,
                              "role": case.role, "status": case.status, "predicted": None, "predicted_low": None,
                              "predicted_high": None, "rel_error": None, "bound": None, "peak_bytes": None,
                              "capacity_bytes": None, "rule": case.rule}
    if case.unsupported:
        return {**row, "result": "unsupported", "reason": " ".join(case.unsupported.split())}
    try:
        p = predict(case)
    except PerfsimError as err:
        return {**row, "result": "error", "reason": str(err)}
    if isinstance(case.published, bool):
        error = float(p.value) - float(case.published)
    else:
        error = (float(p.value) - case.published) / case.published
    return {**row, "predicted": p.value, "predicted_low": p.low, "predicted_high": p.high, "rel_error": error,
            "bound": p.bound, "peak_bytes": p.peak_bytes, "capacity_bytes": p.capacity_bytes, "result": "ok",
            "reason": ""}


def _kind(hardware: str) -> str:
    try:
        spec = load_hardware(hardware)
    except PerfsimError:
        return "unknown"
    return spec.device.kind


def scores(rows: list[dict[str, object]]) -> dict[str, object]:
    """Counts, median and p90 |rel_error| of the scored validation rows, the worst case and its factor off (for fit
    verdicts: a wrong one, with no factor), and the unsupported and error counts; null where nothing is scored."""
    scored = [r for r in rows if r["role"] == "validation" and r["result"] == "ok"]
    errors = np.array([abs(float(r["rel_error"])) for r in scored])  # type: ignore[arg-type]
    verdicts = bool(scored) and all(r["family"] == "fit" for r in scored)
    wrong = (r for r in scored if r["rel_error"])
    worst = next(wrong, None) if verdicts else max(scored, key=_factor, default=None)
    return {
        "n_cases": len(rows),
        "n_scored": len(scored),
        "median_abs_rel_error": float(np.median(errors)) if len(errors) else None,
        "p90_abs_rel_error": float(np.percentile(errors, 90)) if len(errors) else None,
        "worst_case": worst["id"] if worst else None,
        "worst_factor_off": _factor(worst) if worst and not verdicts else None,
        "n_unsupported": sum(r["result"] == "unsupported" for r in rows),
        "n_error": sum(r["result"] == "error" for r in rows),
    }


def by_class(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Per hardware class with any case: its scores (fit verdicts apart) and its scores per metric family."""
    classes = [c for c in (*HARDWARE_CLASSES, "unknown") if any(r["hardware_class"] == c for r in rows)]
    return {c: _grouped([r for r in rows if r["hardware_class"] == c]) for c in classes}


def _grouped(rows: list[dict[str, object]]) -> dict[str, object]:
    numeric = [r for r in rows if r["family"] != "fit"]
    return {**scores(numeric), "n_cases": len(rows), "n_unsupported": sum(r["result"] == "unsupported" for r in rows),
            "n_error": sum(r["result"] == "error" for r in rows), "by_family": by_family(rows)}


def by_family(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Scores per metric family with any case, in FAMILIES order."""
    return {f: scores([r for r in rows if r["family"] == f]) for f in FAMILIES if any(r["family"] == f for r in rows)}


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    """Median and p90 of |rel_error| over validation cases with a result (fit verdicts apart); the worst case;
    counts; and the same per hardware class and per metric family."""
    overall = scores([r for r in rows if r["family"] != "fit"])
    return {
        "median_abs_rel_error": overall["median_abs_rel_error"],
        "p90_abs_rel_error": overall["p90_abs_rel_error"],
        "n_validation": overall["n_scored"],
        "n_unsupported": sum(r["result"] == "unsupported" for r in rows),
        "n_error": sum(r["result"] == "error" for r in rows),
        "worst_case": overall["worst_case"],
        "worst_factor_off": overall["worst_factor_off"],
        "by_kind": dict(Tally(str(r["kind"]) for r in rows)),
        "by_status": dict(Tally(str(r["status"]) for r in rows)),
        "by_result": dict(Tally(str(r["result"]) for r in rows)),
        "by_role": dict(Tally(str(r["role"]) for r in rows)),
        "by_class": by_class(rows),
        "by_family": by_family(rows),
    }


def _factor(row: dict[str, object]) -> float:
    """How many times off: max(predicted / published, published / predicted)."""
    ratio = float(row["predicted"]) / float(row["published"])  # type: ignore[arg-type]
    return max(ratio, 1 / ratio) if ratio > 0 else math.inf


def validation_report(paths: list[Path] | None = None, hardware_class: str | None = None,
                      on_case: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """Every case of `paths` (default: the shipped files) predicted, or only those of `hardware_class` (gpu, npu,
    cpu, wafer, pim, mcu, fpga); `on_case(done, total)` after each. Raise PerfsimError on a bad case file or an
    unknown class."""
    wanted = check_class(hardware_class) if hardware_class is not None else None
    cases = [case for case in load_cases(paths, check_inputs)
             if wanted is None or class_of(case.reported_hardware) == wanted]
    rows = []
    for case in cases:
        rows.append(case_row(case))
        if on_case is not None:
            on_case(len(rows), len(cases))
    return {"cases": rows, "summary": summarise(rows)}


def markdown(report: dict[str, object]) -> str:
    """The report as a Markdown page: summary, the table per hardware class and metric family, one row per case."""
    s = report["summary"]
    assert isinstance(s, dict)
    lines = [
        "# Validation report",
        "",
        "Generated by `perfsim validate -o docs/validation`; do not edit by hand.",
        "",
        f"- validation cases with a result: {s['n_validation']}, unsupported: {s['n_unsupported']}, "
        f"errors: {s['n_error']}",
        f"- median \\|rel_error\\|: {pct(s['median_abs_rel_error'])}, p90: {pct(s['p90_abs_rel_error'])}",
        f"- worst: {s['worst_case']}, {s['worst_factor_off']:.2f}× off" if s["worst_case"] else "- worst: none",
        "",
        "## Per hardware class and metric family",
        "",
        "Validation cases only are scored; calibration and identity cases count under *cases*.",
        "",
        "| class | family | cases | scored | median \\|error\\| | p90 \\|error\\| | worst | unsupported | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, group in s["by_class"].items():
        lines.append(_scores_line(f"**{name}**", "all", group))
        lines += [_scores_line("", fam, scored) for fam, scored in group["by_family"].items()]
    lines += [
        "",
        "![predicted vs published](predicted_vs_published.png)",
        "",
        "## Cases",
        "",
        "| id | hardware | class | role | metric | predicted | band | published | error | result | bound or reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:  # type: ignore[union-attr]
        low, high = r["predicted_low"], r["predicted_high"]
        band = "" if low == high else f"{low:.3g} – {high:.3g}"
        error = "" if r["rel_error"] is None else f"{r['rel_error']:+.1%}"
        why = r["bound"] if r["result"] == "ok" else str(r["reason"]).replace("|", "/")
        lines.append(f"| {r['id']} | {r['hardware']} | {r['hardware_class']} | {r['role']} | {r['metric']} | "
                     f"{_number(r['predicted'])} | {band} | {_number(r['published'])} | {error} | {r['result']} | "
                     f"{why} |")
    return "\n".join(lines) + "\n"


def _scores_line(name: str, fam: str, s: dict[str, object]) -> str:
    worst = "" if s["worst_case"] is None else str(s["worst_case"])
    if s["worst_factor_off"] is not None:
        worst += f" ({float(s['worst_factor_off']):.2f}×)"  # type: ignore[arg-type]
    return (f"| {name} | {fam} | {s['n_cases']} | {s['n_scored']} | {pct(s['median_abs_rel_error'])} | "
            f"{pct(s['p90_abs_rel_error'])} | {worst} | {s['n_unsupported']} | {s['n_error']} |")


def _number(value: object) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else f"{float(value):.4g}"  # type: ignore[arg-type]


def pct(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"

"""`perfsim verify` and `perfsim validate`: the reference core and the published measurements."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.errors import PerfsimError
from perfsim.output import render


def _verify(args: argparse.Namespace) -> str:
    from perfsim.reference.registry import run_checks

    rows = run_checks()
    args.exit_code = 0 if all(row["passed"] for row in rows) else 1
    if args.format == "table":
        shown = [{k: row[k] for k in ("check", "op", "variant", "passed", "max_abs_error", "counts_match")}
                 for row in rows]
        failed = sum(not row["passed"] for row in rows)
        return f"{render(shown, 'table')}\n{len(rows) - failed} passed, {failed} failed"
    return render(rows, args.format)


def _validate(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim.validation.report import pct, validation_report

    report = validation_report([Path(f) for f in args.files] or None)
    rows = report["cases"]
    if args.output:
        _write_validation(report, Path(args.output))
    if args.format == "json":
        return render(report, "json")
    columns = ("id", "kind", "role", "metric", "predicted", "published", "rel_error", "result", "bound")
    shown = [{k: row[k] for k in columns} for row in rows]
    if args.format == "csv":
        return render(rows, "csv")
    summary = report["summary"]
    lines = [render(shown, "table"), "",
             f"validation cases with a result: {summary['n_validation']}; unsupported: {summary['n_unsupported']}; "
             f"errors: {summary['n_error']}",
             f"median |rel_error| {pct(summary['median_abs_rel_error'])}, "
             f"p90 {pct(summary['p90_abs_rel_error'])}; worst {summary['worst_case']} "
             f"({summary['worst_factor_off']:.2f}x off)" if summary["worst_case"] else "no validation case scored"]
    return "\n".join(lines)


def _write_validation(report: dict, directory) -> None:
    """DIR/report.json, DIR/report.csv, DIR/report.md and DIR/predicted_vs_published.png."""
    from perfsim.analysis.validation_plot import plot_validation
    from perfsim.validation.report import markdown

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(render(report, "json") + "\n")
        (directory / "report.csv").write_text(render(report["cases"], "csv") + "\n")
        (directory / "report.md").write_text(markdown(report))
        plot_validation(report["cases"]).savefig(directory / "predicted_vs_published.png")
    except OSError as err:
        raise PerfsimError(f"cannot write to {directory}: {err.strerror}") from None


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    validate = add(commands, "validate", _validate, "predict published measurements and report the error per case")
    validate.add_argument("files", nargs="*", metavar="FILE.yaml", help="case files (default: the shipped cases)")
    validate.add_argument("-o", "--output", metavar="DIR", help="also write report.json, report.csv and a plot")

    add(commands, "verify", _verify, "run the numpy reference checks of every op variant and number format")

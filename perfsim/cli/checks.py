"""`perfsim verify` and `perfsim validate`: the reference core and the published measurements (over perfsim.api)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim import api
from perfsim.cli.present import shown, wrote
from perfsim.output import cell

VERIFY_COLUMNS = ("check", "op", "variant", "passed", "max_abs_error", "counts_match")
VALIDATE_COLUMNS = ("id", "kind", "role", "metric", "predicted", "published", "rel_error", "result", "bound")


def _verify(args: argparse.Namespace) -> str:
    result = api.verify()
    args.exit_code = 0 if result.passed else 1
    if args.format != "table":
        return shown(result.rows, args)
    rows = [{k: row[k] for k in VERIFY_COLUMNS} for row in result.rows]
    return f"{shown(rows, args)}\n{result.summary['passed']} passed, {result.summary['failed']} failed"


def _validate(args: argparse.Namespace) -> str:
    from perfsim.validation.report import pct

    result = api.validate(args.files or None, args.hardware_class, progress=True)
    written = result.write(args.output) if args.output else []
    if args.format == "json":
        text = shown(result.report, args)
    elif args.format == "csv":
        text = shown(result.report["cases"], args)
    else:
        s = result.summary
        rows = [_shown_case(row) for row in result.report["cases"]]
        worst = (f"median |rel_error| {pct(s['median_abs_rel_error'])}, p90 {pct(s['p90_abs_rel_error'])}; worst "
                 f"{s['worst_case']} ({s['worst_factor_off']:.2f}x off)" if s["worst_case"] else
                 "no validation case scored")
        text = "\n".join([shown(rows, args), "", f"validation cases with a result: {s['n_validation']}; "
                          f"unsupported: {s['n_unsupported']}; errors: {s['n_error']}", worst])
    return wrote(text, args, written) if written else text


def _shown_case(row: dict) -> dict:
    """A case's table row: predicted and published in the unit of its metric, the error in percent."""
    values = {k: row[k] for k in VALIDATE_COLUMNS}
    for key in ("predicted", "published"):
        values[key] = cell(row["metric"], row[key])
    values["rel_error"] = "" if row["rel_error"] is None else f"{row['rel_error']:+.1%}"
    return values


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    validate = add(commands, "validate", _validate, "predict published measurements and report the error per case")
    validate.add_argument("files", nargs="*", metavar="FILE.yaml", help="case files (default: the shipped cases)")
    validate.add_argument("-o", "--output", metavar="DIR", help="also write report.json, report.csv and a plot")
    validate.add_argument("--class", dest="hardware_class", metavar="CLASS",
                          help="only the cases of one hardware class: gpu, npu, cpu, wafer, pim, mcu, fpga")

    add(commands, "verify", _verify, "run the numpy reference checks of every op variant and number format")

"""The `perfsim` command line. Each subcommand is a small function; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from perfsim.errors import PerfsimError
from perfsim.output import FORMATS, human, render

Command = Callable[[argparse.Namespace], str]


def _hardware_list(args: argparse.Namespace) -> str:
    from perfsim.hardware import System, load_hardware, shipped_names

    rows = []
    for name in shipped_names():
        spec = load_hardware(name)
        chip = spec.device if isinstance(spec, System) else spec
        rows.append({
            "name": name,
            "kind": chip.kind,
            "system": isinstance(spec, System),
            "chips": spec.chips,
            "chip": chip.name,
            "vendor": chip.vendor,
            "memory_bytes": chip.main.capacity,
            "memory_bandwidth_bytes_per_s": chip.main.bandwidth,
            "description": spec.description,
        })
    return render(rows, args.format)


def _hardware_show(args: argparse.Namespace) -> str:
    from perfsim.hardware import System, load_hardware
    from perfsim.hardware.describe import spans, spec_rows

    spec = load_hardware(args.spec)
    if args.format == "json":
        data = spec.model_dump(mode="json", exclude_none=True)
        data["chips"] = spec.chips
        chip = spec.device if isinstance(spec, System) else spec
        data["peak_flop_per_s"] = {dtype: chip.peak_flops(dtype) for dtype in chip.dtypes}
        data["ranges"] = spans(spec)
        return render(data, "json")
    rows = spec_rows(spec)
    if args.format == "table":
        rows = [{**row, "value": human(row["value"], row["unit"], row["unit"] == "B")
                 if row["unit"] and isinstance(row["value"], float) else row["value"]} for row in rows]
        rows = [{"field": row["field"], "value": row["value"]} for row in rows]
    return render(rows, args.format)


def _schema(args: argparse.Namespace) -> str:
    from pydantic import TypeAdapter

    from perfsim.hardware import Hardware
    from perfsim.ops import Op

    schemas = {"hardware": Hardware, "op": Op}
    return json.dumps(TypeAdapter(schemas[args.what]).json_schema(), indent=2)


def _estimate_op(args: argparse.Namespace) -> str:
    from perfsim.cost import bus_bandwidth, cost
    from perfsim.hardware import load_hardware
    from perfsim.ops import Collective, parse_op

    hardware = load_hardware(args.hardware)
    op = parse_op(args.op)
    result = cost(op, hardware, args.cache)
    record = {"hardware": hardware.name, **result.as_dict()}
    if isinstance(op, Collective):
        record["group"] = op.group or hardware.chips
        record["algorithm_bandwidth_bytes_per_s"] = op.size_bytes / result.time_s
        record["bus_bandwidth_bytes_per_s"] = bus_bandwidth(op, hardware, result.time_s)
    if args.format == "json":
        return render(record, "json")
    return render(_flat_record(record), args.format)


def _flat_record(record: dict) -> list[dict]:
    """One row whose per-level dicts become columns: memory_s.hbm → hbm_memory_s."""
    row = {}
    for key, value in record.items():
        if isinstance(value, dict):
            unit = key.rsplit("_", 1)[-1]
            row.update({f"{key.removesuffix('_' + unit)}_{name.replace(':', '_')}_{unit}": v
                        for name, v in value.items()})
        else:
            row[key] = value
    return [row]


def _roofline(args: argparse.Namespace) -> str:
    from perfsim.analysis.roofline_plot import PlottedOp, plot_roofline
    from perfsim.cost import cost
    from perfsim.hardware import System, load_hardware
    from perfsim.ops import Collective, parse_op

    names = [args.hardware, *(n for n in (args.compare or "").split(",") if n)]
    specs = [load_hardware(name) for name in names]
    chips = [spec.device if isinstance(spec, System) else spec for spec in specs]
    ops = [parse_op(text) for text in args.op or []]
    if any(isinstance(op, Collective) for op in ops):
        raise PerfsimError("a roofline shows ops on one chip; collectives have no arithmetic intensity to plot")
    points = [PlottedOp(op.label, cost(op, chip, args.cache), chip.name) for chip in chips for op in ops]
    figure = plot_roofline(chips, points)
    try:
        figure.savefig(args.output)
    except (OSError, ValueError) as err:
        raise PerfsimError(f"cannot write {args.output}: {err}") from None
    rows = [{"device": p.device, "op": p.label, "intensity_flop_per_byte": p.cost.intensity,
             "attained_flop_per_s": p.cost.flops / p.cost.time_s, "time_s": p.cost.time_s, "bound": p.cost.bound}
            for p in points]
    summary = render(rows, args.format) if rows else ""
    return f"{summary}\nwrote {args.output}".lstrip("\n") if args.format == "table" else summary or "[]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfsim", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(sub: argparse._SubParsersAction, name: str, run: Command, help_text: str,
            formats: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        if formats:
            command.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
        command.set_defaults(run=run)
        return command

    hardware = commands.add_parser("hardware", help="list and show hardware specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(hardware, "list", _hardware_list, "list the shipped devices and systems")
    show = add(hardware, "show", _hardware_show, "show one spec (a shipped name or a path to a YAML file)")
    show.add_argument("spec", metavar="NAME|PATH.yaml")

    schema = add(commands, "schema", _schema, "print the JSON schema of a spec format", formats=False)
    schema.add_argument("what", choices=["hardware", "op"])

    estimate = add(commands, "estimate", _estimate_op, "estimate what an op costs on a device or system")
    estimate.add_argument("--hardware", required=True, metavar="NAME|PATH", help="a shipped spec name or a YAML path")
    estimate.add_argument("--op", required=True, metavar="OP", help='e.g. "gemm m=4096 n=4096 k=4096 dtype=bf16"')
    estimate.add_argument("--cache", choices=["cold", "warm"], default="cold",
                          help="cold: operands come from main memory; warm: one that fits a cache is read from it")

    roof = add(commands, "roofline", _roofline, "draw a roofline with ops as points")
    roof.add_argument("--hardware", required=True, metavar="NAME|PATH")
    roof.add_argument("--op", action="append", metavar="OP", help="an op to place on the plot (repeatable)")
    roof.add_argument("--compare", metavar="NAME,NAME", help="more devices on the same axes")
    roof.add_argument("--cache", choices=["cold", "warm"], default="cold")
    roof.add_argument("-o", "--output", required=True, metavar="FILE.png|.svg")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        print(args.run(args))
    except PerfsimError as err:
        print(f"perfsim: error: {err}", file=sys.stderr)
        return 2
    return 0

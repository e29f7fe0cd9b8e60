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

    schemas = {"hardware": Hardware}
    return json.dumps(TypeAdapter(schemas[args.what]).json_schema(), indent=2)


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
    schema.add_argument("what", choices=["hardware"])
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

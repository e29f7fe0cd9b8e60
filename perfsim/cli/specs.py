"""`perfsim hardware`, `perfsim model` and `perfsim schema`: the spec files and their formats (over perfsim.api)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from perfsim import api
from perfsim.cli.present import shown
from perfsim.output import human, listing, table_width


def _hardware_list(args: argparse.Namespace) -> str:
    return shown(api.hardware_list(), args)


def _hardware_show(args: argparse.Namespace) -> str:
    from perfsim.hardware.describe import spec_rows

    spec = api.hardware(args.spec)
    if args.format == "json":
        return shown(api.hardware_info(spec), args)
    rows = spec_rows(spec)
    if args.format != "table":
        return shown(rows, args)
    return listing([(row["field"], _shown_value(row["value"], row["unit"])) for row in rows], table_width(args.wide))


def _shown_value(value: object, unit: str) -> str:
    """A spec value for people: SI prefixes, binary for bytes, ranges as low – high."""
    from perfsim.units import Span

    if not unit or not isinstance(value, float):
        return str(value)
    if isinstance(value, Span):
        return f"{human(value.low, unit, unit == 'B')} – {human(value.high, unit, unit == 'B')}"
    return human(value, unit, unit == "B")


def _model_list(args: argparse.Namespace) -> str:
    return shown(api.model_list(), args)


def _model_show(args: argparse.Namespace) -> str:
    model = api.model(args.spec)
    if args.format == "json":
        return shown({**model.model_dump(mode="json", exclude_none=True), **api.model_row(model)}, args)
    info = api.model_info(model)
    if args.format == "csv":
        return shown([info], args)
    return shown({key: _per_layer(value) for key, value in info.items()}, args)


def _per_layer(value: object) -> object:
    """A per-layer list as its range (`12 – 20 per layer`); any other value as it is."""
    if not isinstance(value, list):
        return value
    low, high = min(value), max(value)
    return f"{low:,} per layer" if low == high else f"{low:,} – {high:,} per layer"


def _schema(args: argparse.Namespace) -> str:
    return json.dumps(api.schema(args.what), indent=2)


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    hardware = commands.add_parser("hardware", help="list and show hardware specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(hardware, "list", _hardware_list,
        "list the devices and systems on the search path (--spec-dir, PERFSIM_PATH, shipped) and where each is from")
    show = add(hardware, "show", _hardware_show, "show one spec (a name on the search path or a path to a YAML file)")
    show.add_argument("spec", metavar="NAME|PATH.yaml")

    schema = add(commands, "schema", _schema, "print the JSON schema of a spec format", formats=False)
    schema.add_argument("what", choices=["hardware", "op", "model", "scenario", "case"])
    model = commands.add_parser("model", help="list and show model specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(model, "list", _model_list,
        "list the models on the search path with parameter counts and where each is from")
    show_model = add(model, "show", _model_show,
                     "show one model: its architecture and headline numbers "
                     "(a name, a YAML file or a Hugging Face config.json)")
    show_model.add_argument("spec", metavar="NAME|PATH.yaml|config.json")

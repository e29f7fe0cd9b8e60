"""`perfsim hardware`, `perfsim model` and `perfsim schema`: the spec files and their formats."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from perfsim.output import human, render


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
    if args.format != "table":
        return render(rows, args.format)
    width = max(len(row["field"]) for row in rows)
    return "\n".join(f"{row['field']:<{width}}  {_shown_value(row['value'], row['unit'])}" for row in rows)


def _shown_value(value: object, unit: str) -> object:
    """A spec value for people: SI prefixes, binary for bytes, ranges as low – high."""
    from perfsim.units import Span

    if not unit or not isinstance(value, float):
        return value
    if isinstance(value, Span):
        return f"{human(value.low, unit, unit == 'B')} – {human(value.high, unit, unit == 'B')}"
    return human(value, unit, unit == "B")


def _model_list(args: argparse.Namespace) -> str:
    from perfsim.models import load_model, shipped_models

    return render([_model_row(load_model(name)) for name in shipped_models()], args.format)


def _model_show(args: argparse.Namespace) -> str:
    from perfsim.models import load_model

    model = load_model(args.spec)
    if args.format == "json":
        return render({**model.model_dump(mode="json", exclude_none=True), **_model_row(model)}, "json")
    return render([_model_row(model)], args.format)


def _model_row(model) -> dict:
    """Headline numbers: parameters (total, active) and FLOPs per token (2 per multiplied weight, no attention)."""
    from perfsim.models import active_params, total_params
    from perfsim.models.params import flops_per_token

    active = active_params(model)
    return {
        "name": model.name,
        "architecture": model.architecture,
        "mixture_of_experts": model.moe is not None,
        "layers": model.layers,
        "hidden": model.hidden,
        "params": total_params(model),
        "active_params": active,
        "flops_per_token": flops_per_token(model),
        "weight_dtype": model.weight_dtype,
        "description": model.description,
    }


def _schema(args: argparse.Namespace) -> str:
    from pydantic import TypeAdapter

    from perfsim.hardware import Hardware
    from perfsim.models import ModelSpec
    from perfsim.models.scenario import Scenario
    from perfsim.ops import Op
    from perfsim.validation.case import CaseFile

    schemas = {"hardware": Hardware, "op": Op, "model": ModelSpec, "scenario": Scenario, "case": CaseFile}
    return json.dumps(TypeAdapter(schemas[args.what]).json_schema(), indent=2)


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    hardware = commands.add_parser("hardware", help="list and show hardware specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(hardware, "list", _hardware_list, "list the shipped devices and systems")
    show = add(hardware, "show", _hardware_show, "show one spec (a shipped name or a path to a YAML file)")
    show.add_argument("spec", metavar="NAME|PATH.yaml")

    schema = add(commands, "schema", _schema, "print the JSON schema of a spec format", formats=False)
    schema.add_argument("what", choices=["hardware", "op", "model", "scenario", "case"])
    model = commands.add_parser("model", help="list and show model specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(model, "list", _model_list, "list the shipped models with parameter counts")
    show_model = add(model, "show", _model_show, "show one model (a shipped name or a path to a YAML file)")
    show_model.add_argument("spec", metavar="NAME|PATH.yaml")

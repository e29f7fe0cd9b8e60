"""Scenario flags shared by estimate, roofline and serve: one flag per Scenario field, help from its description."""

from __future__ import annotations

import argparse

from perfsim.errors import PerfsimError

SERVE_EXCLUDES = ("phase", "batch", "prompt_len", "context", "micro_batches")


def scenario_from_args(args: argparse.Namespace, exclude: tuple[str, ...] = ()):
    """A Scenario from --scenario FILE overlaid with the flags given on the command line (but `exclude`)."""
    from pathlib import Path

    from perfsim.models.scenario import Scenario
    from perfsim.specfile import read_yaml, validate

    data = read_yaml(Path(args.scenario)) if args.scenario else {}
    data.update({name: getattr(args, name) for name in Scenario.model_fields
                 if name not in exclude and getattr(args, name, None) is not None})
    for required in ("model", "hardware"):
        if required not in data:
            raise PerfsimError(f"--{required} is required (or give it in --scenario FILE)")
    return validate(Scenario, data, args.scenario or "scenario")


def add_scenario_flags(command: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One flag per Scenario field, its help from the field's description (vidur-style)."""
    import typing

    from perfsim.models.scenario import Scenario

    command.add_argument("--scenario", metavar="FILE.yaml", help="a scenario file; flags override its fields")
    for name, field in Scenario.model_fields.items():
        if name in exclude:
            continue
        flag = f"--{name.replace('_', '-')}"
        kind = typing.get_args(field.annotation) or (field.annotation,)
        literal = [a for a in kind if typing.get_origin(a) is typing.Literal]
        shown = not field.is_required() and field.default is not None and field.default is not False
        help_text = f"{field.description} (default: {field.default})" if shown else field.description
        if bool in kind:
            command.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        elif literal or typing.get_origin(field.annotation) is typing.Literal:
            choices = typing.get_args(literal[0] if literal else field.annotation)
            command.add_argument(flag, dest=name, choices=choices, default=None, help=help_text)
        else:
            number = next((t for t in (int, float) if t in kind or any(
                typing.get_origin(a) is typing.Annotated and typing.get_args(a)[0] is t for a in kind)), str)
            command.add_argument(flag, dest=name, type=number, default=None, help=help_text,
                                 metavar=name.upper() if name not in ("model", "hardware") else "NAME|PATH")


def flat_record(record: dict) -> list[dict]:
    """One row whose nested dicts become columns with their unit last: memory_s.hbm → memory_hbm_s,
    bytes_per_level.hbm → hbm_bytes, ttft_s.p50 → ttft_p50_s."""
    row = {}
    for key, value in record.items():
        if not isinstance(value, dict):
            row[key] = value
        elif key == "bytes_per_level":
            row.update({f"{name}_bytes": v for name, v in value.items()})
        else:
            stem, _, unit = key.rpartition("_")
            row.update({f"{stem}_{name.replace(':', '_')}_{unit}": v for name, v in value.items()})
    return [row]

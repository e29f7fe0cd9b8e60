"""Scenario flags shared by estimate, roofline and serve: one flag per Scenario field, help from its description."""

from __future__ import annotations

import argparse

from perfsim.errors import PerfsimError

SERVE_EXCLUDES = ("phase", "batch", "prompt_len", "context", "micro_batches")


def scenario_fields() -> list[str]:
    """The Scenario fields, each a flag of estimate and roofline (serve: but SERVE_EXCLUDES)."""
    from perfsim.models.scenario import Scenario

    return list(Scenario.model_fields)


def scenario_from_args(args: argparse.Namespace, exclude: tuple[str, ...] = ()):
    """A Scenario from --scenario FILE overlaid with the flags given on the command line (but `exclude`)."""
    from pathlib import Path

    from perfsim.api import scenario_of

    fields = {name: getattr(args, name) for name in scenario_fields()
              if name not in exclude and getattr(args, name, None) is not None}
    for required in ("model", "hardware"):
        if required not in fields and not args.scenario:
            raise PerfsimError(f"--{required} is required (or give it in --scenario FILE)")
    return scenario_of(Path(args.scenario) if args.scenario else {}, fields=fields)


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
        shown = not field.is_required() and field.default not in (None, False) and "(default:" not in (
            field.description or "")  # a description may state a default that depends on something else
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


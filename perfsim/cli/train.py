"""`perfsim train`: one training step (forward, backward, optimizer) of a model on its chips (over perfsim.api)."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable

from perfsim.cli.present import shown, warn, wrote

HEAD_LEFT_OUT = ("memory", "time_s", "breakdown")
"""Summary fields the table's head row leaves out (the rows below, or JSON, show them)."""


def _train(args: argparse.Namespace) -> str:
    from perfsim import api
    from perfsim.training.config import TrainConfig

    fields = {name: getattr(args, name, None) for name in TrainConfig.model_fields}
    if args.no_memory_check:
        fields["check_memory"] = False
    result = api.train(**fields)
    warn(args, result.notes)
    written = []
    if args.plot:
        written.append(api.save_figure(result.plot(), args.plot, "--plot", "train.png"))
    summary = result.summary
    if args.format == "json":
        text = shown(summary, args)
    elif args.format == "csv":
        text = shown(result.records(step_columns=True), args)
    else:
        head = api.flat_record({k: v for k, v in summary.items() if k not in ("memory", "breakdown")})
        text = f"{shown([head], args)}\n\n{shown(result.records(), args)}"
    return wrote(text, args, written) if written else text


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `perfsim train`: one flag per TrainConfig field, its help from the field's description."""
    from perfsim.training.config import TrainConfig

    train = add(commands, "train", _train, "estimate one training step: forward, backward and optimizer on a "
                "cluster (--dp/--tp/--pp/--ep/--zero), or a CNN on one chip")
    for name, field in TrainConfig.model_fields.items():
        if name == "check_memory":
            continue
        flag = f"--{name.replace('_', '-')}"
        kind = typing.get_args(field.annotation) or (field.annotation,)
        literal = next((a for a in (field.annotation, *kind) if typing.get_origin(a) is typing.Literal), None)
        default = "" if field.is_required() or field.default is None else f" (default: {field.default})"
        help_text = f"{field.description}{default}"
        if literal is not None:
            choices = typing.get_args(literal)
            number = int if all(isinstance(c, int) for c in choices) else str
            train.add_argument(flag, dest=name, type=number, choices=choices, help=help_text)
        else:
            number = next((t for t in (int, float) if t in kind or any(
                typing.get_origin(a) is typing.Annotated and typing.get_args(a)[0] is t for a in kind)), str)
            train.add_argument(flag, dest=name, type=number, help=help_text,
                               metavar="NAME|PATH" if name in ("model", "hardware") else name.upper())
    train.add_argument("--no-memory-check", action="store_true",
                       help="estimate even when the step does not fit the chips' memory")
    train.add_argument("--plot", metavar="FILE.png",
                       help="write the step's time and memory breakdown to FILE (.png, .svg, .pdf; no suffix: .png)")

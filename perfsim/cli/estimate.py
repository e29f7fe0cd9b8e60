"""`perfsim estimate` and `perfsim roofline`: one op, or one model step, and its picture (over perfsim.api)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim import api
from perfsim.cli.present import shown, warn, wrote
from perfsim.cli.scenario_flags import add_scenario_flags, scenario_fields, scenario_from_args
from perfsim.errors import PerfsimError

STEP_HEAD_LEFT_OUT = ("memory", "utilisation", "critical_path_s")
"""Step summary fields the table's head row leaves out (the breakdown below, or JSON, shows them)."""


def _estimate(args: argparse.Namespace) -> str:
    if args.op is not None:
        if args.model or args.scenario:
            raise PerfsimError("give either --op or --model/--scenario, not both")
        return _estimate_op(args)
    scenario = scenario_from_args(args)
    if scenario.offload is not None:
        return _estimate_offload(args, scenario)
    step = api.step(scenario=scenario, cache=args.cache, engine=args.engine)
    if args.timeline and step.estimate.schedule is None:
        raise PerfsimError("--timeline needs --engine des")
    warn(args, step.notes)
    written = step.write_timeline(args.timeline) if args.timeline else []
    if args.format == "json":
        text = shown(step.summary, args)
    elif args.format == "csv":
        text = shown(step.records(step_columns=True), args)
    else:
        head = api.flat_record({k: v for k, v in step.summary.items() if k not in STEP_HEAD_LEFT_OUT})
        text = f"{shown([head], args)}\n\n{shown(step.records(), args)}"
    return wrote(text, args, written) if written else text


def _estimate_offload(args: argparse.Namespace, scenario) -> str:
    """An offloaded scenario: the MoE-Lens bound, the simulated iteration and the binding resource."""
    refuse_unused(args, ["engine", "timeline"], "to an offloaded scenario (it always simulates one iteration)")
    result = api.offloaded(scenario=scenario, cache=args.cache)
    warn(args, result.notes)
    if args.format == "json":
        return shown(result.summary, args)
    return shown([api.flat_record(result.summary)], args)


def refuse_unused(args: argparse.Namespace, names: list[str], why: str) -> None:
    """Raise PerfsimError naming each of the flags `names` (dests) given on the command line, and `why`."""
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name, None) is not None]
    if given:
        raise PerfsimError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def op_only(args: argparse.Namespace) -> None:
    """Refuse the scenario flags an op cannot use: it carries its own shape and dtypes (all but --hardware, --cores)."""
    names = [name for name in scenario_fields() if name not in ("hardware", "cores")]
    refuse_unused(args, [*names, "engine", "timeline"], "to --op: an op string carries its own shape, dtypes and "
                  "kernel (write them in the op string, e.g. \"gemm m=8 n=4096 k=4096 dtype=int8\")")


def _estimate_op(args: argparse.Namespace) -> str:
    if not args.hardware:
        raise PerfsimError("--hardware is required")
    op_only(args)
    result = api.estimate(api.op(args.op), args.hardware, cache=args.cache, cores=args.cores)
    warn(args, result.notes)
    if args.format == "json":
        return shown(result.summary, args)
    return shown([api.flat_record(result.summary)], args)


def _roofline(args: argparse.Namespace) -> str:
    if not args.hardware and not args.scenario:
        raise PerfsimError("--hardware is required")
    model_step = bool(args.model or args.scenario)
    if not model_step:
        op_only(args)
    scenario = scenario_from_args(args) if model_step else None
    compare = [name for name in (args.compare or "").split(",") if name]
    result = api.roofline(scenario.hardware if scenario else args.hardware, ops=args.op or [], compare=compare,
                          cache=args.cache, scenario=scenario, cores=args.cores)
    warn(args, result.notes)
    written = result.save(args.output)
    text = shown(result.points, args) if result.points else "" if args.format == "table" else "[]"
    return wrote(text, args, [written])


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    estimate = add(commands, "estimate", _estimate,
                   "estimate one op (--op) or one model step (--model ... --phase prefill|decode)")
    estimate.add_argument("--op", metavar="OP", help='e.g. "gemm m=4096 n=4096 k=4096 dtype=bf16"')
    estimate.add_argument("--cache", choices=["cold", "warm"], default="cold",
                          help="cold: operands come from main memory; warm: one that fits a cache is read from it")
    estimate.add_argument("--engine", choices=["analytic", "des"],
                          help="analytic: add op costs; des: discrete-event simulation with contention and overlap "
                               "(default: des on several chips, analytic on one)")
    estimate.add_argument("--timeline", metavar="DIR",
                          help="with des: write DIR/trace.json (Chrome trace), DIR/gantt.png, DIR/timeline.csv")
    add_scenario_flags(estimate)
    roof = add(commands, "roofline", _roofline, "draw a roofline with ops (or every op of a model step) as points")
    roof.add_argument("--op", action="append", metavar="OP", help="an op to place on the plot (repeatable)")
    roof.add_argument("--compare", metavar="NAME,NAME", help="more devices on the same axes")
    roof.add_argument("--cache", choices=["cold", "warm"], default="cold")
    roof.add_argument("-o", "--output", required=True, metavar="FILE.png|.svg")
    add_scenario_flags(roof)

"""`perfsim estimate` and `perfsim roofline`: one op, or one model step, and its picture."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.scenario_flags import add_scenario_flags, flat_record, scenario_from_args
from perfsim.errors import PerfsimError
from perfsim.output import render


def _estimate(args: argparse.Namespace) -> str:
    if args.op is not None:
        if args.model or args.scenario:
            raise PerfsimError("give either --op or --model/--scenario, not both")
        return _estimate_op(args)
    from pathlib import Path

    from perfsim.engine.export import write_timeline
    from perfsim.models.scenario import resolve
    from perfsim.models.step import estimate_step

    resolved = resolve(scenario_from_args(args))
    engine = args.engine or ("des" if resolved.par.devices > 1 else "analytic")
    if args.timeline and engine != "des":
        raise PerfsimError("--timeline needs --engine des")
    step = estimate_step(resolved, args.cache, engine=engine)
    if args.timeline:
        title = f"{resolved.model.name} {resolved.scenario.phase} on {step.summary()['hardware']}"
        try:
            write_timeline(step.schedule.timeline(), Path(args.timeline), title)
        except OSError as err:
            raise PerfsimError(f"cannot write to {args.timeline}: {err.strerror}") from None
    summary = step.summary()
    if args.format == "json":
        return render(summary, "json")
    if args.format == "csv":
        return render(summary["breakdown"], "csv")
    head = {k: v for k, v in summary.items()
            if k not in ("breakdown", "memory", "parallelism", "utilisation", "critical_path_s")}
    head.update({f"{k}": v for k, v in summary["parallelism"].items()})
    return f"{render([head], 'table')}\n\n{render(summary['breakdown'], 'table')}"


def refuse_unused(args: argparse.Namespace, names: list[str], why: str) -> None:
    """Raise PerfsimError naming each of the flags `names` (dests) given on the command line, and `why`."""
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name, None) is not None]
    if given:
        raise PerfsimError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def op_only(args: argparse.Namespace) -> None:
    """Refuse the scenario flags an op cannot use: it carries its own shape and dtypes (all but --hardware, --cores)."""
    from perfsim.models.scenario import Scenario

    names = [name for name in Scenario.model_fields if name not in ("hardware", "cores")]
    refuse_unused(args, [*names, "engine", "timeline"], "to --op: an op string carries its own shape, dtypes and "
                  "kernel (write them in the op string, e.g. \"gemm m=8 n=4096 k=4096 dtype=int8\")")


def with_cores_flag(chip, cores: int | None):
    """`chip` limited to --cores of its cores, if given."""
    from perfsim.models.scenario import with_cores

    return chip if cores is None else with_cores(chip, cores)


def _estimate_op(args: argparse.Namespace) -> str:
    from perfsim.cost import bus_bandwidth, cost
    from perfsim.hardware import System, load_hardware
    from perfsim.ops import Collective, parse_op

    if not args.hardware:
        raise PerfsimError("--hardware is required")
    op_only(args)
    hardware = load_hardware(args.hardware)
    op = parse_op(args.op)
    if args.cores is not None:
        if isinstance(op, Collective):
            raise PerfsimError("--cores does not apply to a collective: it runs on the system's links")
        hardware = with_cores_flag(hardware.device if isinstance(hardware, System) else hardware, args.cores)
    result = cost(op, hardware, args.cache)
    record = {"hardware": hardware.name, **result.as_dict()}
    if isinstance(op, Collective):
        record["group"] = op.group or hardware.chips
        record["algorithm_bandwidth_bytes_per_s"] = op.size_bytes / result.time_s
        record["bus_bandwidth_bytes_per_s"] = bus_bandwidth(op, hardware, result.time_s)
    if args.format == "json":
        return render(record, "json")
    return render(flat_record(record), args.format)


def _roofline(args: argparse.Namespace) -> str:
    from perfsim.analysis.roofline_plot import PlottedOp, plot_roofline
    from perfsim.cost import cost
    from perfsim.hardware import System, load_hardware
    from perfsim.ops import Collective, parse_op

    if not args.hardware and not args.scenario:
        raise PerfsimError("--hardware is required")
    if not args.model and not args.scenario:
        op_only(args)
    output = _plot_path(args.output)
    names = [args.hardware, *(n for n in (args.compare or "").split(",") if n)]
    ops = [parse_op(text) for text in args.op or []]
    if any(isinstance(op, Collective) for op in ops):
        raise PerfsimError("a roofline shows ops on one chip; collectives have no arithmetic intensity to plot")
    points = []
    if args.model or args.scenario:
        from perfsim.models.step import estimate_step

        base = scenario_from_args(args)
        names[0] = base.hardware
        for name in names:
            step = estimate_step(base.model_copy(update={"hardware": name}), args.cache)
            unique = {t.op.label: (t.op, c) for t, c in zip(step.trace.ops, step.costs, strict=True)
                      if not isinstance(t.op, Collective)}
            points += [PlottedOp(label, c, step.resolved.chip.name) for label, (_, c) in unique.items()]
    specs = [load_hardware(name) for name in names]
    chips = [with_cores_flag(spec.device if isinstance(spec, System) else spec, args.cores) for spec in specs]
    points += [PlottedOp(op.label, cost(op, chip, args.cache), chip.name) for chip in chips for op in ops]
    figure = plot_roofline(chips, points)
    try:
        figure.savefig(output)
    except OSError as err:
        raise PerfsimError(f"cannot write {output}: {err.strerror}") from None
    except ValueError as err:
        raise PerfsimError(f"cannot write {output}: {err}") from None
    rows = [{"device": p.device, "op": p.label, "intensity_flop_per_byte": p.cost.intensity,
             "attained_flop_per_s": p.cost.flops / p.cost.time_s, "time_s": p.cost.time_s, "bound": p.cost.bound}
            for p in points]
    summary = render(rows, args.format) if rows else ""
    return f"{summary}\nwrote {output}".lstrip("\n") if args.format == "table" else summary or "[]"


def _plot_path(output: str):
    """The file `-o` names, with matplotlib's default .png added when it has no suffix (as savefig would)."""
    from pathlib import Path

    path = Path(output)
    if path.is_dir():
        raise PerfsimError(f"-o {output}: is a directory; give a file name, e.g. {path / 'roofline.png'}")
    return path if path.suffix else path.with_name(f"{path.name}.png")


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

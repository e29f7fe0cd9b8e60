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
    """Headline numbers: parameters (total, active) and FLOPs per token (2 per active weight, no attention)."""
    from perfsim.models import active_params, total_params
    from perfsim.models.params import embedding_params

    active = active_params(model)
    return {
        "name": model.name,
        "architecture": model.architecture,
        "mixture_of_experts": model.moe is not None,
        "layers": model.layers,
        "hidden": model.hidden,
        "params": total_params(model),
        "active_params": active,
        "flops_per_token": 2 * (active - embedding_params(model)),
        "weight_dtype": model.weight_dtype,
        "description": model.description,
    }


def _verify(args: argparse.Namespace) -> str:
    from perfsim.reference.registry import run_checks

    rows = run_checks()
    args.exit_code = 0 if all(row["passed"] for row in rows) else 1
    if args.format == "table":
        shown = [{k: row[k] for k in ("check", "op", "variant", "passed", "max_abs_error", "counts_match")}
                 for row in rows]
        failed = sum(not row["passed"] for row in rows)
        return f"{render(shown, 'table')}\n{len(rows) - failed} passed, {failed} failed"
    return render(rows, args.format)


def _validate(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim.validation.report import pct, validation_report

    report = validation_report([Path(f) for f in args.files] or None)
    rows = report["cases"]
    if args.output:
        _write_validation(report, Path(args.output))
    if args.format == "json":
        return render(report, "json")
    columns = ("id", "kind", "role", "metric", "predicted", "published", "rel_error", "result", "bound")
    shown = [{k: row[k] for k in columns} for row in rows]
    if args.format == "csv":
        return render(rows, "csv")
    summary = report["summary"]
    lines = [render(shown, "table"), "",
             f"validation cases with a result: {summary['n_validation']}; unsupported: {summary['n_unsupported']}; "
             f"errors: {summary['n_error']}",
             f"median |rel_error| {pct(summary['median_abs_rel_error'])}, "
             f"p90 {pct(summary['p90_abs_rel_error'])}; worst {summary['worst_case']} "
             f"({summary['worst_factor_off']:.2f}x off)" if summary["worst_case"] else "no validation case scored"]
    return "\n".join(lines)


def _write_validation(report: dict, directory) -> None:
    """DIR/report.json, DIR/report.csv, DIR/report.md and DIR/predicted_vs_published.png."""
    from perfsim.analysis.validation_plot import plot_validation
    from perfsim.validation.report import markdown

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(render(report, "json") + "\n")
        (directory / "report.csv").write_text(render(report["cases"], "csv") + "\n")
        (directory / "report.md").write_text(markdown(report))
        plot_validation(report["cases"]).savefig(directory / "predicted_vs_published.png")
    except OSError as err:
        raise PerfsimError(f"cannot write to {directory}: {err.strerror}") from None


def _schema(args: argparse.Namespace) -> str:
    from pydantic import TypeAdapter

    from perfsim.hardware import Hardware
    from perfsim.models import ModelSpec
    from perfsim.models.scenario import Scenario
    from perfsim.ops import Op
    from perfsim.validation.case import CaseFile

    schemas = {"hardware": Hardware, "op": Op, "model": ModelSpec, "scenario": Scenario, "case": CaseFile}
    return json.dumps(TypeAdapter(schemas[args.what]).json_schema(), indent=2)


def _estimate(args: argparse.Namespace) -> str:
    if args.op is not None:
        if args.model or args.scenario:
            raise PerfsimError("give either --op or --model/--scenario, not both")
        return _estimate_op(args)
    from pathlib import Path

    from perfsim.engine.export import write_timeline
    from perfsim.models.scenario import resolve
    from perfsim.models.step import estimate_step

    resolved = resolve(_scenario(args))
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


def _estimate_op(args: argparse.Namespace) -> str:
    from perfsim.cost import bus_bandwidth, cost
    from perfsim.hardware import load_hardware
    from perfsim.ops import Collective, parse_op

    if not args.hardware:
        raise PerfsimError("--hardware is required")
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


SERVE_EXCLUDES = ("phase", "batch", "prompt_len", "context", "micro_batches")


def _scenario(args: argparse.Namespace, exclude: tuple[str, ...] = ()):
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


def _add_scenario_flags(command: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
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


def _serve(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim.serving.arrivals import from_csv, poisson
    from perfsim.serving.run import simulate_serving
    from perfsim.serving.scheduler import SchedulerConfig

    base = _scenario(args, SERVE_EXCLUDES)
    if args.trace:
        requests, total = from_csv(Path(args.trace)), None
    else:
        requests, total = poisson(args.rate, args.requests, args.prompt_len, args.output_len, args.seed), args.requests
    for name in ("max_batch", "max_tokens", "block_size"):
        if getattr(args, name) < 1:
            raise PerfsimError(f"--{name.replace('_', '-')} must be at least 1")
    config = SchedulerConfig(args.max_batch, args.max_tokens, not args.no_chunked_prefill, args.block_size)
    engine = args.engine or "analytic"
    output = Path(args.output) if args.output else None
    speculation = None
    if args.draft_model:
        from perfsim.serving.costs import Speculation

        speculation = Speculation(base.model_copy(update={"model": args.draft_model}), args.draft_len,
                                  args.acceptance)
    result = simulate_serving(base, requests, config, engine, args.slo_ttft, args.slo_tpot, output, total,
                              speculation, args.prefill_devices)
    if args.format == "json":
        return render(result, "json")
    return render(_flat_record(result), args.format)


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

    if not args.hardware and not args.scenario:
        raise PerfsimError("--hardware is required")
    names = [args.hardware, *(n for n in (args.compare or "").split(",") if n)]
    ops = [parse_op(text) for text in args.op or []]
    if any(isinstance(op, Collective) for op in ops):
        raise PerfsimError("a roofline shows ops on one chip; collectives have no arithmetic intensity to plot")
    points = []
    if args.model or args.scenario:
        from perfsim.models.step import estimate_step

        base = _scenario(args)
        names[0] = base.hardware
        for name in names:
            step = estimate_step(base.model_copy(update={"hardware": name}), args.cache)
            unique = {t.op.label: (t.op, c) for t, c in zip(step.trace.ops, step.costs, strict=True)
                      if not isinstance(t.op, Collective)}
            points += [PlottedOp(label, c, step.resolved.chip.name) for label, (_, c) in unique.items()]
    specs = [load_hardware(name) for name in names]
    chips = [spec.device if isinstance(spec, System) else spec for spec in specs]
    points += [PlottedOp(op.label, cost(op, chip, args.cache), chip.name) for chip in chips for op in ops]
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
    schema.add_argument("what", choices=["hardware", "op", "model", "scenario", "case"])

    validate = add(commands, "validate", _validate, "predict published measurements and report the error per case")
    validate.add_argument("files", nargs="*", metavar="FILE.yaml", help="case files (default: the shipped cases)")
    validate.add_argument("-o", "--output", metavar="DIR", help="also write report.json, report.csv and a plot")

    add(commands, "verify", _verify, "run the numpy reference checks of every op variant and number format")

    model = commands.add_parser("model", help="list and show model specs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add(model, "list", _model_list, "list the shipped models with parameter counts")
    show_model = add(model, "show", _model_show, "show one model (a shipped name or a path to a YAML file)")
    show_model.add_argument("spec", metavar="NAME|PATH.yaml")

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
    _add_scenario_flags(estimate)

    serve = add(commands, "serve", _serve, "simulate serving: arrivals, continuous batching, KV cache, SLOs")
    serve.add_argument("--rate", type=float, default=1.0, help="Poisson arrivals per second (default: 1)")
    serve.add_argument("--requests", type=int, default=100, help="number of requests (default: 100)")
    serve.add_argument("--trace", metavar="FILE.csv", help="arrivals from a CSV: arrival_s, prompt_len, output_len")
    serve.add_argument("--prompt-len", default="512",
                       help="prompt tokens: a number or uniform:LO:HI, exponential:MEAN, normal:MEAN:STD, "
                            "lognormal:MEDIAN:SIGMA (default: 512)")
    serve.add_argument("--output-len", default="128", help="output tokens, as --prompt-len (default: 128)")
    serve.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    serve.add_argument("--slo-ttft", type=float, metavar="S", help="TTFT target in seconds, for goodput")
    serve.add_argument("--slo-tpot", type=float, metavar="S", help="TPOT target in seconds, for goodput")
    serve.add_argument("--max-batch", type=int, default=256, help="most sequences in flight (default: 256)")
    serve.add_argument("--max-tokens", type=int, default=8192, help="token budget per iteration (default: 8192)")
    serve.add_argument("--no-chunked-prefill", action="store_true", help="prefill whole prompts only")
    serve.add_argument("--block-size", type=int, default=16, help="KV-cache block in tokens (default: 16)")
    serve.add_argument("--engine", choices=["analytic", "des"], help="step costs from (default: analytic)")
    serve.add_argument("--prefill-devices", type=int, metavar="N",
                       help="disaggregate: N chips run prefill only, the rest decode")
    serve.add_argument("--draft-model", metavar="NAME|PATH", help="speculative decoding with this draft model")
    serve.add_argument("--draft-len", type=int, default=4, help="draft tokens proposed per step (default: 4)")
    serve.add_argument("--acceptance", type=float, default=0.7,
                       help="probability each draft token is accepted (default: 0.7)")
    serve.add_argument("-o", "--output", metavar="DIR", help="write DIR/requests.csv and DIR/serving.png")
    _add_scenario_flags(serve, exclude=SERVE_EXCLUDES)

    roof = add(commands, "roofline", _roofline, "draw a roofline with ops (or every op of a model step) as points")
    roof.add_argument("--op", action="append", metavar="OP", help="an op to place on the plot (repeatable)")
    roof.add_argument("--compare", metavar="NAME,NAME", help="more devices on the same axes")
    roof.add_argument("--cache", choices=["cold", "warm"], default="cold")
    roof.add_argument("-o", "--output", required=True, metavar="FILE.png|.svg")
    _add_scenario_flags(roof)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 a check failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        print(args.run(args))
    except PerfsimError as err:
        print(f"perfsim: error: {err}", file=sys.stderr)
        return 2
    return getattr(args, "exit_code", 0)

"""`perfsim serve`: a serving simulation from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.scenario_flags import SERVE_EXCLUDES, add_scenario_flags, flat_record, scenario_from_args
from perfsim.errors import PerfsimError
from perfsim.output import render

# Poisson arrival flags and their defaults; None in argparse, so a flag given with --trace is seen
POISSON_DEFAULTS = {"rate": 1.0, "requests": 100, "prompt_len": "512", "output_len": "128", "seed": 0}
MAX_REQUESTS = 10**8
MAX_SETTING = 2**31 - 1  # the largest --max-batch, --max-tokens, --block-size, --draft-len, --prefill-devices


def _serve(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim.serving.run import simulate_serving
    from perfsim.serving.scheduler import SchedulerConfig

    requests, total = _requests(args)
    for name in ("max_batch", "max_tokens", "block_size", "draft_len", "prefill_devices"):
        _bounded(name, getattr(args, name), 1, MAX_SETTING)
    slo_ttft, slo_tpot = _duration("slo-ttft", args.slo_ttft), _duration("slo-tpot", args.slo_tpot)
    base = scenario_from_args(args, SERVE_EXCLUDES)
    config = SchedulerConfig(args.max_batch, args.max_tokens, not args.no_chunked_prefill, args.block_size)
    engine = args.engine or "analytic"
    output = Path(args.output) if args.output else None
    speculation = None
    if args.draft_model:
        from perfsim.serving.costs import Speculation

        speculation = Speculation(base.model_copy(update={"model": args.draft_model}), args.draft_len,
                                  base.acceptance)
    result = simulate_serving(base, requests, config, engine, slo_ttft, slo_tpot, output, total,
                              speculation, args.prefill_devices)
    if args.format == "json":
        return render(result, "json")
    text = render(flat_record(result), args.format)
    return f"{text}\nwrote {output / 'requests.csv'} and {output / 'serving.png'}" \
        if output is not None and args.format == "table" else text


def _requests(args: argparse.Namespace):
    """The request iterator and its length (None for a trace); Raise PerfsimError for a Poisson flag
    given with --trace."""
    from pathlib import Path

    from perfsim.serving.arrivals import from_csv, poisson

    given = [name for name in POISSON_DEFAULTS if getattr(args, name) is not None]
    if args.trace:
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            raise PerfsimError(f"{flags} cannot apply with --trace (the CSV gives the arrivals and lengths)")
        return from_csv(Path(args.trace)), None
    values = {name: POISSON_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
              for name in POISSON_DEFAULTS}
    _bounded("requests", values["requests"], 1, MAX_REQUESTS)
    return poisson(values["rate"], values["requests"], values["prompt_len"], values["output_len"],
                   values["seed"]), values["requests"]


def _bounded(name: str, value: int | None, low: int, high: int) -> None:
    """Raise PerfsimError if a given integer flag is outside [low, high] (a 400-digit number shown elided)."""
    if value is not None and not low <= value <= high:
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:20]}… ({len(str(value))} digits)"
        raise PerfsimError(f"--{name.replace('_', '-')} must be {low} to {high:,}, got {shown}")


def _duration(flag: str, text: str | None) -> float | None:
    """A positive finite time in seconds from '2', '2s', '150ms' or '150 us' (a bare number is seconds)."""
    if text is None:
        return None
    from perfsim.units import UnitError, parse_quantity

    try:
        number: float | None = float(text)
    except ValueError:
        number = None
    try:
        return parse_quantity(text if number is None else number, "time")
    except UnitError as err:
        raise PerfsimError(f"--{flag}: {err}") from None


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    serve = add(commands, "serve", _serve, "simulate serving: arrivals, continuous batching, KV cache, SLOs")
    serve.add_argument("--rate", type=float, help="Poisson arrivals per second (default: 1)")
    serve.add_argument("--requests", type=int, help="number of requests (default: 100)")
    serve.add_argument("--trace", metavar="FILE.csv",
                       help="arrivals from a CSV: arrival_s, prompt_len, output_len (instead of --rate, --requests, "
                            "--prompt-len, --output-len, --seed)")
    serve.add_argument("--prompt-len",
                       help="prompt tokens: a number or uniform:LO:HI, exponential:MEAN, normal:MEAN:STD, "
                            "lognormal:MEDIAN:SIGMA (default: 512)")
    serve.add_argument("--output-len", help="output tokens, as --prompt-len (default: 128)")
    serve.add_argument("--seed", type=int, help="random seed, ≥ 0 (default: 0)")
    serve.add_argument("--slo-ttft", metavar="TIME", help="TTFT target for goodput: 2s, 500ms (a bare number: s)")
    serve.add_argument("--slo-tpot", metavar="TIME", help="TPOT target for goodput: 150ms, 0.05 (a bare number: s)")
    serve.add_argument("--max-batch", type=int, default=256, help="most sequences in flight (default: 256)")
    serve.add_argument("--max-tokens", type=int, default=8192, help="token budget per iteration (default: 8192)")
    serve.add_argument("--no-chunked-prefill", action="store_true", help="prefill whole prompts only")
    serve.add_argument("--block-size", type=int, default=16, help="KV-cache block in tokens (default: 16)")
    serve.add_argument("--engine", choices=["analytic", "des"], help="step costs from (default: analytic)")
    serve.add_argument("--prefill-devices", type=int, metavar="N",
                       help="disaggregate: N chips run prefill only, the rest decode")
    serve.add_argument("--draft-model", metavar="NAME|PATH", help="speculative decoding with this draft model")
    serve.add_argument("--draft-len", type=int, default=4, help="draft tokens proposed per step (default: 4)")
    serve.add_argument("-o", "--output", metavar="DIR", help="write DIR/requests.csv and DIR/serving.png")
    add_scenario_flags(serve, exclude=SERVE_EXCLUDES)

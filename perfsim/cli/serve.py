"""`perfsim serve`: a serving simulation from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.present import shown, warn, wrote
from perfsim.cli.scenario_flags import SERVE_EXCLUDES, add_scenario_flags, scenario_from_args
from perfsim.errors import PerfsimError

# Poisson arrival flags and their defaults; None in argparse, so a flag given with --trace is seen
POISSON_DEFAULTS = {"rate": 1.0, "requests": 100, "prompt_len": "512", "output_len": "128", "seed": 0}


def _serve(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim import api

    given = [name for name in POISSON_DEFAULTS if getattr(args, name) is not None]
    if args.trace and given:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise PerfsimError(f"{flags} cannot apply with --trace (the CSV gives the arrivals and lengths)")
    arrivals = {name: POISSON_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
                for name in POISSON_DEFAULTS}
    run = api.serve(scenario=scenario_from_args(args, SERVE_EXCLUDES), trace=args.trace, **arrivals,
                    slo_ttft=args.slo_ttft, slo_tpot=args.slo_tpot, max_batch=args.max_batch,
                    max_tokens=args.max_tokens, chunked_prefill=not args.no_chunked_prefill,
                    block_size=args.block_size, engine=args.engine or "analytic", draft_model=args.draft_model,
                    draft_len=args.draft_len, prefill_devices=args.prefill_devices, output=args.output,
                    progress=True)
    warn(args, run.notes)
    text = shown(run.summary if args.format == "json" else [api.flat_record(run.summary)], args)
    if args.output is None:
        return text
    return wrote(text, args, [Path(args.output) / "requests.csv", Path(args.output) / "serving.png"])


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

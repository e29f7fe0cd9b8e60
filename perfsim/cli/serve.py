"""`perfsim serve`: a serving simulation from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.scenario_flags import SERVE_EXCLUDES, add_scenario_flags, flat_record, scenario_from_args
from perfsim.errors import PerfsimError
from perfsim.output import render


def _serve(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim.serving.arrivals import from_csv, poisson
    from perfsim.serving.run import simulate_serving
    from perfsim.serving.scheduler import SchedulerConfig

    base = scenario_from_args(args, SERVE_EXCLUDES)
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
    return render(flat_record(result), args.format)


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
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
    add_scenario_flags(serve, exclude=SERVE_EXCLUDES)

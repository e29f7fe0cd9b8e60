"""`perfsim serve`: a serving simulation (or a capacity search) from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.present import shown, warn, wrote
from perfsim.cli.scenario_flags import SERVE_EXCLUDES, add_scenario_flags, scenario_from_args
from perfsim.errors import PerfsimError

# arrival flags and their defaults; None in argparse, so a flag given with --trace is seen
POISSON_DEFAULTS = {"rate": 1.0, "requests": 100, "prompt_len": "512", "output_len": "128", "seed": 0,
                    "arrivals": "poisson"}


def _serve(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim import api

    given = [name for name in POISSON_DEFAULTS if getattr(args, name) is not None]
    if args.trace and given:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
        raise PerfsimError(f"{flags} cannot apply with --trace (the trace gives the arrivals and lengths)")
    if args.trace and args.max_rate:
        raise PerfsimError("--max-rate varies the arrival rate; a trace fixes it")
    if not args.max_rate and (args.rate_range or args.percentile is not None):
        raise PerfsimError("--rate-range and --percentile apply to --max-rate")
    arrivals = {name: POISSON_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
                for name in POISSON_DEFAULTS}
    settings = dict(scenario=scenario_from_args(args, SERVE_EXCLUDES), max_batch=args.max_batch,
                    max_tokens=args.max_tokens, chunked_prefill=not args.no_chunked_prefill,
                    block_size=args.block_size, engine=args.engine or "analytic", draft_model=args.draft_model,
                    draft_len=args.draft_len, prefill_devices=args.prefill_devices, replicas=args.replicas,
                    router=args.router, scheduler=args.scheduler, preemption=args.preemption,
                    prefix_cache=args.prefix_cache, host_kv=args.host_kv, context_policy=args.context_policy)
    if args.max_rate:
        if args.requests is None:  # the search lengthens each probe to a steady state (api.max_rate)
            del arrivals["requests"]
        search = api.max_rate(slo_ttft=args.slo_ttft, slo_tpot=args.slo_tpot,
                              percentile=99 if args.percentile is None else args.percentile,
                              rate_range=_rate_range(args.rate_range), **arrivals, **settings)
        warn(args, search.notes)
        text = shown(search.summary if args.format == "json" else [api.flat_record(search.summary)], args)
        if args.output is None:
            return text
        table, picture = Path(args.output) / "capacity.csv", Path(args.output) / "capacity.png"
        _write(args.output, lambda: (search.to_frame().to_csv(table, index=False),
                                     search.plot().savefig(picture, format="png")))
        return wrote(text, args, [table, picture])
    run = api.serve(trace=args.trace, **arrivals, slo_ttft=args.slo_ttft, slo_tpot=args.slo_tpot,
                    output=args.output, progress=True, **settings)
    warn(args, run.notes)
    text = shown(run.summary if args.format == "json" else [api.flat_record(run.summary)], args)
    if args.output is None:
        return text
    return wrote(text, args, [Path(args.output) / "requests.csv", Path(args.output) / "serving.png"])


def _rate_range(text: str | None) -> tuple[float, float] | None:
    """LOW:HIGH in requests/s."""
    if text is None:
        return None
    low, sep, high = text.partition(":")
    try:
        return float(low), float(high) if sep else float("nan")
    except ValueError:
        raise PerfsimError(f"--rate-range: '{text}' is not LOW:HIGH (requests/s)") from None


def _write(directory: str, write: Callable[[], object]) -> None:
    from pathlib import Path

    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        write()
    except OSError as err:
        raise PerfsimError(f"-o {directory}: cannot write {err.filename or directory} ({err.strerror})") from None


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    serve = add(commands, "serve", _serve, "simulate serving: arrivals, replicas, schedulers, KV cache, SLOs")
    serve.add_argument("--rate", type=float, help="mean arrivals per second (default: 1; with --max-rate: where the "
                                                  "search starts)")
    serve.add_argument("--requests", type=int, help="number of requests (default: 100; with --max-rate, enough "
                       "for a steady state at each rate)")
    serve.add_argument("--arrivals", metavar="PROCESS",
                       help="poisson, gamma:CV (bursty for CV > 1), onoff:ON_S:OFF_S, diurnal:AMPLITUDE:PERIOD_S "
                            "(default: poisson)")
    serve.add_argument("--trace", metavar="FILE",
                       help="arrivals from a .csv or .jsonl: arrival_s, prompt_len, output_len and optional prefix_id, "
                            "prefix_len, conversation_id (instead of --rate, --requests, --prompt-len, --output-len, "
                            "--seed, --arrivals)")
    serve.add_argument("--prompt-len",
                       help="prompt tokens: a number or uniform:LO:HI, exponential:MEAN, normal:MEAN:STD, "
                            "lognormal:MEDIAN:SIGMA (default: 512)")
    serve.add_argument("--output-len", help="output tokens, as --prompt-len (default: 128)")
    serve.add_argument("--seed", type=int, help="random seed, ≥ 0 (default: 0)")
    serve.add_argument("--context-policy", choices=["drop", "clip", "error"], default="drop",
                       help="requests longer than a replica holds: dropped, clipped, or an error (default: drop; "
                            "counted in the summary)")
    serve.add_argument("--slo-ttft", metavar="TIME", help="TTFT target for goodput: 2s, 500ms (a bare number: s)")
    serve.add_argument("--slo-tpot", metavar="TIME", help="TPOT target for goodput: 150ms, 0.05 (a bare number: s)")
    serve.add_argument("--max-rate", action="store_true",
                       help="find the highest rate whose --percentile TTFT and TPOT meet the SLOs (bisection)")
    serve.add_argument("--rate-range", metavar="LOW:HIGH",
                       help="with --max-rate: a bracket, LOW meeting and HIGH missing the SLOs (default: doubling "
                            "or halving --rate until found)")
    serve.add_argument("--percentile", type=float, help="with --max-rate: the percentile compared (default: 99)")
    serve.add_argument("--replicas", type=int, default=1, help="copies of the scenario behind a router (default: 1)")
    serve.add_argument("--router", choices=["round-robin", "least-outstanding", "least-kv", "prefix-affinity"],
                       default="round-robin", help="how requests are spread over --replicas (default: round-robin)")
    serve.add_argument("--scheduler", choices=["vllm", "sarathi", "orca", "static"], default="vllm",
                       help="each replica's scheduler (default: vllm)")
    serve.add_argument("--max-batch", type=int, default=256, help="most sequences in flight (default: 256)")
    serve.add_argument("--max-tokens", type=int, default=8192, help="token budget per iteration (default: 8192)")
    serve.add_argument("--no-chunked-prefill", action="store_true", help="prefill whole prompts only")
    serve.add_argument("--block-size", type=int, default=16, help="KV-cache block in tokens (default: 16)")
    serve.add_argument("--prefix-cache", type=int, default=0, metavar="TOKENS",
                       help="KV tokens per replica kept for shared prefixes, LRU (default: 0, off)")
    serve.add_argument("--host-kv", metavar="SIZE", help="host memory per replica as a KV tier, with a unit: 256GiB "
                       "(default: none, the KV cache lives in chip memory only)")
    serve.add_argument("--preemption", choices=["recompute", "swap"], default="recompute",
                       help="what a preempted sequence's cache does (swap needs --host-kv; default: recompute)")
    serve.add_argument("--engine", choices=["analytic", "des"], help="step costs from the analytic model or the "
                       "discrete-event simulation (default: analytic)")
    serve.add_argument("--prefill-devices", type=int, metavar="N",
                       help="disaggregate: N chips run prefill only, the rest decode (default: none, "
                            "every chip runs both)")
    serve.add_argument("--draft-model", metavar="NAME|PATH", help="speculative decoding with this draft model")
    serve.add_argument("--draft-len", type=int, default=4, help="draft tokens proposed per step (default: 4)")
    serve.add_argument("-o", "--output", metavar="DIR",
                       help="write DIR/requests.csv and DIR/serving.png (with --max-rate: DIR/capacity.csv and .png)")
    add_scenario_flags(serve, exclude=SERVE_EXCLUDES)

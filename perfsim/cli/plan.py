"""`perfsim plan`: per candidate chip, the cheapest configuration serving a rate within TTFT and TPOT SLOs."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.present import shown, warn


def _plan(args: argparse.Namespace) -> str:
    from perfsim import api

    result = api.plan(args.model, args.rate, args.slo_ttft, args.slo_tpot,
                      [name.strip() for name in args.candidates.split(",") if name.strip()],
                      percentile=args.percentile, prompt_len=args.prompt_len, output_len=args.output_len,
                      requests=args.requests, seed=args.seed, max_chips=args.max_chips,
                      weight_dtypes=_listed(args.weight_dtype), kv_dtypes=_listed(args.kv_dtype))
    warn(args, result.notes)
    if args.format == "json":
        return shown(result.summary, args)
    frame = result.to_frame()
    return shown(frame.astype(object).where(frame.notna(), None).to_dict("records"), args)


def _listed(value: str | None) -> list[str] | None:
    """A comma-separated flag's names (None: the flag is not given)."""
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    plan = add(commands, "plan", _plan, "capacity plan: per candidate chip, the cheapest chips × replicas "
                                        "(tp/pp, ep for MoE models, dtypes) meeting TTFT and TPOT SLOs at a "
                                        "request rate, with cost and energy")
    plan.add_argument("--model", required=True, metavar="NAME|PATH", help="the model to serve")
    plan.add_argument("--rate", type=float, required=True, help="Poisson arrivals per second")
    plan.add_argument("--slo-ttft", required=True, metavar="TIME", help="TTFT target: 2s, 500ms (a bare number: s)")
    plan.add_argument("--slo-tpot", required=True, metavar="TIME", help="TPOT target: 50ms, 0.05 (a bare number: s)")
    plan.add_argument("--percentile", type=float, default=99.0, help="the percentile held to the SLOs (default: 99)")
    plan.add_argument("--candidates", required=True, metavar="CHIP,CHIP,...",
                      help="chips to plan with, comma-separated (h100-sxm,mi300x,ascend-910b)")
    plan.add_argument("--prompt-len", type=int, default=512, help="prompt tokens per request (default: 512)")
    plan.add_argument("--output-len", type=int, default=128, help="output tokens per request (default: 128)")
    plan.add_argument("--requests", type=int,
                      help="requests of every serving run (default: 200 while bisecting the rate, and a confirming "
                           "run spanning 100 request lifetimes for a steady p99)")
    plan.add_argument("--seed", type=int, default=0, help="random seed of the arrivals (default: 0)")
    plan.add_argument("--max-chips", type=int, default=64,
                      help="most chips per replica tried; every count the model and the chip's servers allow "
                           "(default: 64)")
    plan.add_argument("--weight-dtype", metavar="DTYPE,DTYPE,...",
                      help="weight dtypes or quantisation schemes to consider, comma-separated (bf16,fp8_e4m3,int4; "
                           "default: the model's)")
    plan.add_argument("--kv-dtype", metavar="DTYPE,DTYPE,...",
                      help="KV-cache dtypes to consider, comma-separated (bf16,fp8_e4m3; default: the activation "
                           "dtype, bf16)")

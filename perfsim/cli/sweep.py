"""`perfsim sweep`: every point of a sweep YAML, on a process pool or a Dask cluster, resumable."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from perfsim.cli.present import shown, wrote


def _sweep(args: argparse.Namespace) -> str:
    from pathlib import Path

    from perfsim import api

    result = api.sweep(args.spec, args.output, workers=args.workers, dask=args.dask, progress=True)
    if args.output is None:
        return shown(result.frame.astype(object).where(result.frame.notna(), None).to_dict("records"), args)
    return wrote(shown(result.summary if args.format == "json" else [result.summary], args), args,
                 [Path(args.output)])


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    sweep = add(commands, "sweep", _sweep, "run a sweep YAML (hardware × chips × parallelism × batch × dtypes × "
                                            "models × phases × loads): one row per point")
    sweep.add_argument("spec", metavar="SWEEP.yaml", help="the sweep: mode, base, axes, points, hardware_overrides")
    sweep.add_argument("-o", "--output", metavar="FILE",
                       help="results .parquet or .csv; points already there are kept, only missing ones run "
                            "(stdout then shows points, computed, kept, invalid)")
    sweep.add_argument("--workers", type=int, metavar="N", help="processes (default: the CPU count; 1: no pool)")
    sweep.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS (tcp://host:8786)")

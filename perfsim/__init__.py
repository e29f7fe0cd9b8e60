"""perfsim: predict how ML workloads perform on GPUs, NPUs, wafer-scale meshes, PIM, CPUs, MCUs and FPGAs.

`import perfsim as ps` gives the Python API (see perfsim.api): ps.hardware, ps.model, ps.op, ps.estimate,
ps.step, ps.offloaded, ps.serve, ps.max_rate, ps.train, ps.sweep, ps.plan, ps.roofline, ps.validate, ps.verify,
ps.notes and the spec listings.
It is loaded on first use, so the command line starts without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["PerfsimError", "estimate", "hardware", "hardware_info", "hardware_list", "max_rate", "model", "model_info",
           "model_list", "notes", "offloaded", "op", "plan", "roofline", "schema", "serve", "step", "sweep", "train",
           "validate", "verify"]


def __getattr__(name: str) -> Any:
    if name == "PerfsimError":
        from perfsim.errors import PerfsimError

        return PerfsimError
    if name in __all__:
        return getattr(import_module("perfsim.api"), name)
    raise AttributeError(f"module 'perfsim' has no attribute '{name}'")

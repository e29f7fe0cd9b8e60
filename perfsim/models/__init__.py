"""Model specs and what they turn into: parameter counts, traces, memory footprints."""

from importlib import import_module

_HOMES = {"WORKLOAD_DIR": "loader", "load_model": "loader", "shipped_models": "loader", "active_params": "params",
          "total_params": "params", "MoESpec": "spec", "ModelSpec": "spec"}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"perfsim.models.{_HOMES[name]}"), name)


__all__ = ["WORKLOAD_DIR", "MoESpec", "ModelSpec", "active_params", "load_model", "shipped_models", "total_params"]

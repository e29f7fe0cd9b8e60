"""Finding and loading model specs: a shipped name (`llama-2-7b`) or a path to a YAML file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from perfsim.models.spec import ModelSpec
from perfsim.specfile import find_spec, load_spec

WORKLOAD_DIR = Path(__file__).resolve().parents[2] / "workloads"


def shipped_models() -> list[str]:
    return sorted(path.stem for path in WORKLOAD_DIR.glob("*.yaml"))


def load_model(ref: str) -> ModelSpec:
    """Load a model spec by shipped name or path. Raise PerfsimError on any bad input."""
    return _load(find_spec(ref, WORKLOAD_DIR, "model").resolve())


@lru_cache(maxsize=128)
def _load(path: Path) -> ModelSpec:
    return load_spec(path, ModelSpec)

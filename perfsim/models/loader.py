"""Finding and loading model specs: a name on the search path (`llama-2-7b`, see perfsim.datadirs) or a path."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from perfsim.datadirs import find_spec, shipped_dir, spec_files
from perfsim.models.spec import ModelSpec
from perfsim.specfile import load_spec

WORKLOAD_DIR = shipped_dir("model")


def shipped_models() -> list[str]:
    """Names of every model spec on the search path (the user's and the shipped ones), sorted."""
    return list(spec_files("model"))


def load_model(ref: str) -> ModelSpec:
    """Load a model spec by name or path (a YAML file or a Hugging Face config.json). Raise PerfsimError on any
    bad input."""
    if ref.endswith(".json"):
        return _load(Path(ref).resolve())
    return _load(find_spec(ref, "model").resolve())


@lru_cache(maxsize=128)
def _load(path: Path) -> ModelSpec:
    if path.suffix == ".json":
        from perfsim.models.hf_config import read_hf_config

        return read_hf_config(path)
    return load_spec(path, ModelSpec)

"""Finding and loading hardware specs: a shipped name (`h100-sxm`) or a path to a YAML file."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field

from perfsim.errors import PerfsimError
from perfsim.hardware.device import Device
from perfsim.hardware.system import System
from perfsim.specfile import read_yaml, shown, validate

SPEC_DIR = Path(__file__).resolve().parents[2] / "hardware_specs"
Hardware = Annotated[Device | System, Field(discriminator="kind")]
MAX_NESTING = 8


def shipped_names() -> list[str]:
    """Names of the specs shipped in hardware_specs/, sorted."""
    return sorted(path.stem for path in SPEC_DIR.glob("*.yaml"))


def spec_path(ref: str, relative_to: Path = SPEC_DIR) -> Path:
    """The file behind `ref`: a path (has a suffix or a slash) or a shipped name."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
        return path if path.is_absolute() or path.exists() else relative_to / path
    path = SPEC_DIR / f"{ref}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(ref, shipped_names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise PerfsimError(f"unknown hardware '{ref}'{hint}; see `perfsim hardware list`, "
                           "or give a path to a .yaml file")
    return path


def load_hardware(ref: str) -> Device | System:
    """Load a device or system spec by shipped name or path. Raise PerfsimError on any bad input."""
    return _load(spec_path(ref).resolve(), 0)


@lru_cache(maxsize=256)
def _load(path: Path, depth: int) -> Device | System:
    if depth > MAX_NESTING:
        raise PerfsimError(f"{path}: systems nest deeper than {MAX_NESTING} levels (a member refers back to itself?)")
    data = read_yaml(path)
    if data.get("kind") == "system" and isinstance(data.get("member"), str):
        data["member"] = _load(spec_path(data["member"], path.parent).resolve(), depth + 1)
    spec = validate(Hardware, data, str(shown(path)))
    if spec.name != path.stem:
        raise PerfsimError(f"{shown(path)}: name: '{spec.name}' must equal the file name '{path.stem}'")
    return spec

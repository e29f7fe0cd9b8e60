"""Finding and loading hardware specs: a shipped name (`h100-sxm`) or a path to a YAML file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field

from perfsim.errors import PerfsimError
from perfsim.hardware.device import Device
from perfsim.hardware.system import System
from perfsim.specfile import find_spec, load_spec, read_yaml

SPEC_DIR = Path(__file__).resolve().parents[2] / "hardware_specs"
Hardware = Annotated[Device | System, Field(discriminator="kind")]
MAX_NESTING = 8


def shipped_names() -> list[str]:
    """Names of the specs shipped in hardware_specs/, sorted."""
    return sorted(path.stem for path in SPEC_DIR.glob("*.yaml"))


def load_hardware(ref: str) -> Device | System:
    """Load a device or system spec by shipped name or path. Raise PerfsimError on any bad input."""
    return _load(find_spec(ref, SPEC_DIR, "hardware").resolve(), 0)


@lru_cache(maxsize=256)
def _load(path: Path, depth: int) -> Device | System:
    if depth > MAX_NESTING:
        raise PerfsimError(f"{path}: systems nest deeper than {MAX_NESTING} levels (a member refers back to itself?)")
    data = read_yaml(path)
    if data.get("kind") == "system" and isinstance(data.get("member"), str):
        data["member"] = _load(find_spec(data["member"], SPEC_DIR, "hardware", path.parent).resolve(), depth + 1)
    return load_spec(path, Hardware, data)

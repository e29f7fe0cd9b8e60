"""Finding and loading hardware specs: a name on the search path (`h100-sxm`, see perfsim.datadirs) or a path."""

from __future__ import annotations

import typing
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field

from perfsim.datadirs import find_spec, shipped_dir, spec_files
from perfsim.errors import PerfsimError
from perfsim.hardware.device import Device
from perfsim.hardware.system import System
from perfsim.specfile import load_spec, read_yaml, shown

SPEC_DIR = shipped_dir("hardware")
Hardware = Annotated[Device | System, Field(discriminator="kind")]
KIND_CLASSES: dict[str, type] = {cls.model_fields["kind"].annotation.__args__[0]: cls  # type: ignore[union-attr]
                                 for cls in (*typing.get_args(typing.get_args(Device)[0]), System)}
MAX_NESTING = 8


def shipped_names() -> list[str]:
    """Names of every hardware spec on the search path (the user's and the shipped ones), sorted."""
    return list(spec_files("hardware"))


def load_hardware(ref: str) -> Device | System:
    """Load a device or system spec by name or path. Raise PerfsimError on any bad input."""
    return _load(find_spec(ref, "hardware").resolve(), 0)


@lru_cache(maxsize=256)
def _load(path: Path, depth: int) -> Device | System:
    if depth > MAX_NESTING:
        raise PerfsimError(f"{path}: systems nest deeper than {MAX_NESTING} levels (a member refers back to itself?)")
    data = read_yaml(path)
    for field in ("member", "host"):
        if data.get("kind") == "system" and isinstance(data.get(field), str):
            data[field] = _load(_referenced(path, field, data[field]), depth + 1)
    # validate against the one class the file's kind names (building the whole union's schema costs ~40 ms);
    # an unknown or missing kind goes through the union, whose error lists the kinds
    kind = data.get("kind")
    return load_spec(path, KIND_CLASSES.get(kind, Hardware) if isinstance(kind, str) else Hardware, data)


def _referenced(path: Path, field: str, ref: str) -> Path:
    """The spec file a system's `field` (member, host) names; Raise PerfsimError naming `path` and `field`."""
    try:
        target = find_spec(ref, "hardware", path.parent).resolve()
    except PerfsimError as err:
        raise PerfsimError(f"{shown(path)}: {field}: {err}") from None
    if not target.is_file():
        raise PerfsimError(f"{shown(path)}: {field}: no spec file '{ref}' (relative paths are taken from the "
                           f"working directory, then from this file's folder)")
    return target

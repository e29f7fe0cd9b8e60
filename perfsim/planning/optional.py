"""Optional packages, imported only when a feature needs them, with a one-line error naming the extra."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from perfsim.errors import PerfsimError

EXTRAS = {"pyarrow": "sweep", "dask": "dask", "distributed": "dask"}
"""The pyproject extra that installs each optional package."""


def require(module: str, feature: str) -> ModuleType:
    """`module` imported; Raise PerfsimError naming `feature` and the extra to install when it is missing."""
    try:
        return import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise PerfsimError(f"{feature} needs {package}: pip install 'perfsim[{EXTRAS[package]}]'") from None

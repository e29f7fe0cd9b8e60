"""The numpy reference core: real kernels on small tensors that verify numerics and the cost model's counts."""

import importlib

MODULES = ("perfsim.reference.kernels", "perfsim.reference.lut", "perfsim.reference.collectives",
           "perfsim.reference.classic", "perfsim.reference.formats", "perfsim.reference.mesh",
           "perfsim.reference.backward", "perfsim.reference.decoder")


def load_all() -> None:
    """Import every module that registers checks (each registers on import)."""
    for name in MODULES:
        importlib.import_module(name)

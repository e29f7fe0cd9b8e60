"""Build hook: ship the top-level spec folders inside the package, as perfsim/_data/<folder>/**/*.yaml.

The folders stay the single source of truth; perfsim.datadirs reads the copy through importlib.resources
when installed from a wheel, and the folders themselves from a checkout or an editable install.
Everything else about the project is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("hardware_specs", "workloads", "validation")


class BuildPyWithSpecs(build_py):
    """build_py that also copies DATA_FOLDERS into the built package (not in editable mode)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for folder in DATA_FOLDERS:
            target = Path(self.build_lib, "perfsim", "_data", folder)
            shutil.rmtree(target, ignore_errors=True)  # no stale copy of a deleted spec from an earlier build
            for source in sorted(Path(folder).rglob("*.yaml")):  # subfolders too (workloads/networks/)
                destination = target / source.relative_to(folder)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildPyWithSpecs})

"""Where spec files are found: the user's directories first, then the files shipped with perfsim.

The search path, first match wins:
1. directories added with `add_spec_dir()` or `searching()` (the CLI's `--spec-dir`), in the order added;
2. the directories in the environment variable PERFSIM_PATH (os.pathsep-separated), left to right;
3. the shipped specs.

A directory D on the path is laid out like perfsim's repository: hardware specs in D/hardware_specs/,
models in D/workloads/, validation case files in D/validation/. Files may also lie in D itself; there a
file's top-level field tells its kind (`kind:` hardware, `layers:` model, `cases:` case file) and other
YAML files are skipped. D's subfolder is searched before D itself. A name is the file name without
`.yaml`, so a user's `h100-sxm.yaml` shadows the shipped H100 everywhere, and listings show each name once.

The shipped specs are the repository's top-level folders, the single source of truth: a checkout or an
editable install reads them in place; a wheel carries a copy in perfsim/_data/ made at build time (setup.py).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Literal

from perfsim.errors import PerfsimError
from perfsim.specfile import read_yaml, shown

Kind = Literal["hardware", "model", "case"]
FOLDERS: dict[str, str] = {"hardware": "hardware_specs", "model": "workloads", "case": "validation"}
MARKERS: dict[str, str] = {"hardware": "kind", "model": "layers", "case": "cases"}
ENV_VAR = "PERFSIM_PATH"
_added: list[Path] = []


def add_spec_dir(directory: str | os.PathLike[str]) -> None:
    """Search `directory` before PERFSIM_PATH and the shipped specs (after directories added earlier).

    Raise PerfsimError if it is not a directory.
    """
    path = _directory(directory, "spec directory")
    if path not in _added:
        _added.append(path)


@contextmanager
def searching(directories: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Search `directories` as add_spec_dir() would, inside the `with` block only (the CLI's `--spec-dir`)."""
    before = list(_added)
    try:
        for directory in directories:
            add_spec_dir(directory)
        yield
    finally:
        _added[:] = before


def user_dirs() -> list[Path]:
    """The user's search directories, first wins: those added with add_spec_dir(), then PERFSIM_PATH's."""
    dirs = list(_added)
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        path = _directory(entry, ENV_VAR) if entry else None
        if path is not None and path not in dirs:
            dirs.append(path)
    return dirs


@cache
def shipped_dir(kind: Kind) -> Path:
    """The folder of shipped `kind` specs: perfsim/_data/ in an installed wheel, else the checkout's folder."""
    packaged = Path(__file__).parent / "_data" / FOLDERS[kind]  # importlib.resources' path, without its imports
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / FOLDERS[kind]


def search_dirs(kind: Kind) -> list[Path]:
    """Every existing directory searched for `kind` files, first wins."""
    return [directory for directory, _ in _places(kind)]


def find(kind: Kind, name: str) -> Path | None:
    """The first file on the search path for the `kind` spec called `name`, or None."""
    for directory, marked in _places(kind):
        path = directory / f"{name}.yaml"
        if path.is_file() and _is_kind(path, kind, marked):
            return path
    return None


def spec_files(kind: Kind) -> dict[str, Path]:
    """Every `kind` spec on the search path, name -> the file that wins, sorted by name."""
    files: dict[str, Path] = {}
    for directory, marked in _places(kind):
        for path in sorted(directory.glob("*.yaml")):
            if path.stem not in files and _is_kind(path, kind, marked):
                files[path.stem] = path
    return dict(sorted(files.items()))


def origin(path: Path, kind: Kind) -> str:
    """Where a spec file comes from, for listings: `shipped`, or its directory."""
    return "shipped" if path.parent == shipped_dir(kind) else str(shown(path.parent))


def find_spec(ref: str, kind: Kind, relative_to: Path | None = None) -> Path:
    """The file behind `ref`: a path (a .yaml/.yml suffix or a slash) or a name on the search path.

    A relative path that does not exist from the working directory is taken relative to `relative_to`
    (the folder of the file that refers to it). Raise PerfsimError for an unknown name, with the closest
    known name and the directories searched.
    """
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
        return path if path.is_absolute() or path.exists() or relative_to is None else relative_to / path
    path = find(kind, ref)
    if path is None:
        names = {p.stem for directory in search_dirs(kind) for p in directory.glob("*.yaml")}
        close = difflib.get_close_matches(ref, sorted(names), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        searched = ", ".join(str(shown(directory)) for directory in search_dirs(kind))
        raise PerfsimError(f"unknown {kind} '{ref}'{hint}; searched {searched}; see `perfsim {kind} list`, "
                           f"or give a path to a .yaml file")
    return path


def _directory(entry: str | os.PathLike[str], what: str) -> Path:
    path = Path(entry).expanduser()
    if not path.is_dir():
        raise PerfsimError(f"{what} {entry}: not a directory")
    return path.resolve()


def _places(kind: Kind) -> list[tuple[Path, bool]]:
    """(directory, whether its files must carry the kind's marker field), first wins; existing ones only."""
    places = [place for root in user_dirs() for place in ((root / FOLDERS[kind], False), (root, True))]
    places.append((shipped_dir(kind), False))
    unique: dict[Path, bool] = {}
    for directory, marked in places:
        if directory.is_dir():
            unique.setdefault(directory, marked)
    return list(unique.items())


def _is_kind(path: Path, kind: Kind, marked: bool) -> bool:
    return not marked or MARKERS[kind] in read_yaml(path)

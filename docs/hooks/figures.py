"""mkdocs hook: draw the docs' figures with perfsim at build time and add them to the site.

Each figure is a zero-argument function in figure_registry.FIGURES beside this file, keyed by the docs-relative
path its page links: guide_figures.py registers the guide's (its chapters show the calls), page_figures.py those
of the other pages (each its page's python block). The gallery page (guide/gallery.md, one roofline per shipped
hardware spec) is written here too.
Figures are cached in .cache/docs-figures/DIGEST/, DIGEST covering perfsim's code, the specs, the cases and
these hooks, so a rebuild with nothing changed draws nothing; a changed digest redraws them all, one process
per core (at most four), and removes the older cache folders.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # this checkout's perfsim, and the figure modules

import page_figures  # noqa: E402, F401  (registers the pages' figures)
from figure_registry import FIGURES, draw  # noqa: E402
from guide_figures import gallery_markdown  # noqa: E402

CACHE = ROOT / ".cache" / "docs-figures"
WATCHED = ("perfsim", "hardware_specs", "workloads", "validation", "docs/hooks", "docs/guide")


def digest() -> str:
    """A digest of every file that can change a figure."""
    sha = hashlib.sha256()
    for top in WATCHED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yaml", ".yml", ".csv"):
                sha.update(str(path.relative_to(ROOT)).encode())
                sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def _drawn(folder: Path) -> None:
    """Draw every figure missing from `folder`, in parallel."""
    missing = [path for path in FIGURES if not (folder / path).exists()]
    if not missing:
        return
    workers = max(1, min(len(missing), os.cpu_count() or 1, 4))
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        list(pool.map(draw, missing, [folder] * len(missing)))


def on_files(files: Files, config) -> Files:
    folder = CACHE / digest()
    folder.mkdir(parents=True, exist_ok=True)
    for old in CACHE.iterdir():
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    _drawn(folder)
    for path in FIGURES:
        files.append(File.generated(config, path, abs_src_path=str(folder / path)))
    files.append(File.generated(config, "guide/gallery.md", content=gallery_markdown()))
    return files

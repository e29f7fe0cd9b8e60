"""The docs' figures drawn at build time (docs/hooks): every image a page links is a committed file or a figure
the build draws, and each page figure (page_figures.py) is the code its page's python block shows."""

import inspect
import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")
PYTHON = re.compile(r"```python\n(.*?)```", re.S)

sys.path.insert(0, str(DOCS / "hooks"))
import guide_figures  # noqa: E402, F401  (registers the guide's figures)
import page_figures  # noqa: E402, F401  (registers the other pages' figures)
from figure_registry import FIGURES  # noqa: E402

PAGE_FIGURES = sorted(path for path in FIGURES if not path.startswith("guide/"))


def _linked_images() -> list[tuple[str, str]]:
    """(page, docs-relative path of the image) for every image link in docs/."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for link in IMAGE.findall(page.read_text()):
            target = (page.parent / link).resolve().relative_to(DOCS).as_posix()
            found.append((page.relative_to(DOCS).as_posix(), target))
    return found


def _page(figure: str) -> Path:
    """The page a page figure belongs to: training/mfu_vs_batch.png → docs/training.md."""
    return DOCS / f"{figure.split('/')[0]}.md"


def test_every_linked_image_is_committed_or_drawn():
    images = _linked_images()
    assert ("training.md", "training/mfu_vs_batch.png") in images
    for page, image in images:
        assert (DOCS / image).is_file() or image in FIGURES, f"{page}: {image} is neither in docs/ nor drawn"


@pytest.mark.parametrize("figure", PAGE_FIGURES)
def test_page_figure_is_linked_and_not_committed(figure):
    assert f"]({figure})" in _page(figure).read_text(), f"{_page(figure).name} does not link {figure}"
    assert not (DOCS / figure).exists(), f"docs/{figure} is committed and drawn: git rm it"


@pytest.mark.parametrize("figure", PAGE_FIGURES)
def test_page_figure_is_the_pages_code(figure):
    """Every statement line of the function (its imports aside) is a line of the page's python blocks (their
    trailing comments aside), and what it returns is named on the page."""
    page = _page(figure)
    shown = {line.split("  # ")[0].strip() for block in PYTHON.findall(page.read_text()) for line in block.splitlines()}
    body = inspect.getsource(FIGURES[figure]).splitlines()
    lines = [line.strip() for line in body if line.startswith("    ")]
    returned = [line.removeprefix("return ") for line in lines if line.startswith("return ")]
    assert len(returned) == 1, f"{figure}: one return statement expected"
    for line in lines:
        if line and not line.startswith(("import ", "from ", "return ")):
            assert line in shown, f"{figure}: {line!r} is not on {page.name}"
    assert returned[0] in page.read_text(), f"{figure}: {returned[0]!r} is not on {page.name}"

"""The teaching guide (docs/guide): every chapter's python blocks run in order in one namespace, each exercise's
answer block computes `answer` and it must equal the answer its text states (so a wrong number in the prose
fails), every chapter has 2–3 exercises and at least one figure that the docs build draws with perfsim."""

import re
import sys
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDE = DOCS / "guide"
PIECE = re.compile(r'<details markdown="1"><summary>Answer</summary>(.*?)</details>|```python\n(.*?)```', re.S)
STATED = re.compile(r"\*\*Answer: (.+?)\*\*")
NUMBER = re.compile(r"^[-+]?(\d[\d,]*)(\.\d+)?(?:e([-+]?\d+))?")
IMAGE = re.compile(r"!\[[^\]]*\]\((figures/[^)]+)\)")

sys.path.insert(0, str(DOCS / "hooks"))


def chapters() -> list[Path]:
    return sorted(p for p in GUIDE.glob("*.md") if p.name != "index.md")


def cells(page: Path) -> list[tuple[str, str | None]]:
    """(code, the answer it must compute or None) for each python block of the page, in order."""
    found = []
    for answer_block, code in PIECE.findall(page.read_text()):
        if not answer_block:
            found.append((textwrap.dedent(code), None))
            continue
        stated = STATED.findall(answer_block)
        blocks = re.findall(r"```python\n(.*?)```", answer_block, re.S)
        assert len(stated) == 1 and len(blocks) == 1, f"{page.name}: an answer states one **Answer: …** and " \
                                                      f"computes it in one python block"
        found.append((textwrap.dedent(blocks[0]), stated[0]))
    return found


def matches(computed: object, stated: str) -> bool:
    """`computed` rounds to `stated` to the digits stated (`295 FLOP/B`, `1.7×`, `12,400`); words compare equal."""
    if isinstance(computed, bool):
        computed = "yes" if computed else "no"
    if isinstance(computed, str):
        return stated.strip().lower() == computed.lower()
    number = NUMBER.match(stated.strip())
    if not number:
        return False
    decimals = len(number.group(2) or ".") - 1
    exponent = int(number.group(3) or 0)
    value = float(number.group(0).replace(",", ""))
    return abs(float(computed) - value) <= 0.5 * 10 ** (exponent - decimals) * (1 + 1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize("page", chapters(), ids=lambda p: p.stem)
def test_chapter_runs_and_its_answers_are_right(page, monkeypatch):
    monkeypatch.chdir(DOCS.parent)  # the paths in the chapters are from the repository root
    namespace: dict = {}
    exercises = 0
    for number, (code, stated) in enumerate(cells(page), 1):
        exec(compile(code, f"<{page.name} python block {number}>", "exec"), namespace)
        if stated is not None:
            exercises += 1
            computed = namespace.pop("answer")
            assert matches(computed, stated), f"{page.name} block {number}: computes {computed!r}, text says {stated}"
    assert 2 <= exercises <= 3, f"{page.name}: {exercises} exercises (want 2 or 3)"


@pytest.mark.parametrize("page", chapters(), ids=lambda p: p.stem)
def test_chapter_shows_figures_the_build_draws(page):
    from guide_figures import FIGURES

    images = IMAGE.findall(page.read_text())
    assert images, f"{page.name}: no figure"
    for image in images:
        assert f"guide/{image}" in FIGURES, f"{page.name}: {image} is not in figure_registry.FIGURES"


def test_answers_are_compared_to_the_digits_stated():
    assert matches(295.4, "295 FLOP/B") and not matches(296, "295 FLOP/B")
    assert matches(1.72, "1.7×") and not matches(1.76, "1.7×")
    assert matches(12_449, "12,400 tokens/s") is False and matches(12_400.4, "12,400 tokens/s")
    assert matches(True, "yes") and matches("memory:hbm", "memory:hbm") and not matches(False, "yes")

"""Every example in docs/ runs: `$ perfsim ...` lines exit 0; a page's python blocks execute in order in one
namespace, as the cells of one notebook. The guide's python blocks (docs/guide) run in tests/test_guide.py,
which also checks its exercises' answers; its console lines run here."""

import re
import shlex
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.S)


def _examples():
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        blocks = BLOCK.findall(page.read_text())
        cells = [body for lang, body in blocks if lang == "python"]
        if cells and page.parent.name != "guide":
            yield pytest.param("python", cells, id=f"{name}-python")
        for _, body in blocks:
            for line in body.splitlines():
                if line.startswith("$ perfsim "):
                    yield pytest.param("console", line[2:], id=f"{name}-{line[10:50]}")


@pytest.mark.parametrize(("lang", "code"), list(_examples()))
def test_doc_example_runs(lang, code, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(DOCS.parent)
    if lang == "python":
        namespace: dict = {}
        for number, cell in enumerate(code, 1):
            exec(compile(cell, f"<docs python block {number}>", "exec"), namespace)
        return
    argv = [arg.replace("OUT/", f"{tmp_path}/") for arg in shlex.split(code)[1:]]
    result = cli(*argv)
    assert result.code == 0, result.err
    assert result.out.strip()

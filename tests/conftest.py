"""Shared fixtures: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import pytest

from perfsim.cli import main

matplotlib.use("Agg")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """cli("hardware", "list") -> Result(code, stdout, stderr)."""

    def run(*argv: str) -> Result:
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's --help and usage errors
            code = exit_.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run

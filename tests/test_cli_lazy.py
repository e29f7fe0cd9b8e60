"""The CLI imports only what the invoked command needs, and the parser it builds for one command is the full one's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perfsim.cli import COMMAND_MODULES, build_parser, invoked_command

ROOT = Path(__file__).resolve().parents[1]


def _subparsers(parser):
    return next(action for action in parser._actions if action.dest == "command")


def test_the_command_table_lists_every_command_in_help_order():
    assert list(_subparsers(build_parser()).choices) == list(COMMAND_MODULES)


@pytest.mark.parametrize("name", list(COMMAND_MODULES))
def test_one_command_parser_is_the_full_ones(name):
    full, alone = _subparsers(build_parser()).choices[name], _subparsers(build_parser(name)).choices[name]
    assert alone.format_help() == full.format_help()


@pytest.mark.parametrize(("argv", "command"), [
    (["estimate", "--op", "gemm m=1 n=1 k=1"], "estimate"),
    (["--spec-dir", "estimate", "serve"], "serve"),  # a spec directory named like a command is not the command
    (["--spec-dir=d", "--spec-dir", "e", "verify"], "verify"),
    (["--spec", "d", "model", "list"], "model"),  # argparse's prefix of --spec-dir
    (["-h", "estimate"], None),  # top-level help lists every command: the full parser answers it
    (["--bogus", "estimate"], None),
    ([], None),
])
def test_invoked_command(argv, command):
    assert invoked_command(argv) == command


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser(invoked_command(["--help"])).parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in COMMAND_MODULES)


def test_an_op_estimate_imports_only_its_command_and_its_device_kind():
    # h100-sxm is an accelerator: of the per-kind cost models only perfsim.cost.accelerator is imported,
    # and of the command modules only perfsim.cli.estimate (with the shared present and scenario_flags)
    code = ("import sys; from perfsim.cli import main; "
            "main(['estimate', '--hardware', 'h100-sxm', '--op', 'gemm m=64 n=64 k=64', '--format', 'json']); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('perfsim.cost.', 'perfsim.cli.')))))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(run.stdout.split("\n")[-2].split())
    kinds = {f"perfsim.cost.{kind}" for kind in ("accelerator", "cpu", "fpga", "mcu", "pim", "wafer_mesh")}
    commands = {f"perfsim.cli.{name}" for name in set(COMMAND_MODULES.values())}
    assert loaded & kinds == {"perfsim.cost.accelerator"}
    assert loaded & commands == {"perfsim.cli.estimate"}

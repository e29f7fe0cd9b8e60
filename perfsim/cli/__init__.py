"""The `perfsim` command line. Each command lives in a small module; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from perfsim import datadirs
from perfsim.errors import PerfsimError
from perfsim.output import FORMATS

Command = Callable[[argparse.Namespace], str]
COMMAND_MODULES: dict[str, str] = {
    "hardware": "specs", "schema": "specs", "model": "specs", "estimate": "estimate", "roofline": "estimate",
    "serve": "serve", "train": "train", "sweep": "sweep", "plan": "plan", "validate": "checks", "verify": "checks",
    "ui": "ui"}
"""The module of perfsim.cli that registers each command, in the order `perfsim --help` lists them."""
DESCRIPTION = ("Predict how ML workloads perform on GPUs, NPUs, wafer-scale meshes, processing-in-memory, CPUs, "
               "MCUs and FPGAs, without running them there.")


def build_parser(command_name: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `command_name` (a key of COMMAND_MODULES) only the module that registers it
    is imported and registered, so that a run pays only for the command it runs."""
    parser = argparse.ArgumentParser(prog="perfsim", description=DESCRIPTION)
    parser.add_argument("--spec-dir", action="append", default=[], metavar="DIR",
                        help="also look for hardware, model and case YAML files in DIR, before PERFSIM_PATH and the "
                             "shipped specs (repeatable)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(sub: argparse._SubParsersAction, name: str, run: Command, help_text: str,
            formats: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        if formats:
            command.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
            command.add_argument("--wide", action="store_true",
                                 help="tables: every column in full, however wide (default: fit the terminal)")
        command.set_defaults(run=run)
        return command

    wanted = [COMMAND_MODULES[command_name]] if command_name in COMMAND_MODULES else COMMAND_MODULES.values()
    for name in dict.fromkeys(wanted):
        import_module(f"perfsim.cli.{name}").register(commands, add)
    return parser


def invoked_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names: its first word after any --spec-dir options; None where another option (--help)
    comes first, so that the full parser answers it."""
    words = iter(argv)
    for word in words:
        option = word.split("=", 1)[0]
        if len(option) > 2 and "--spec-dir".startswith(option):  # argparse takes any unambiguous prefix
            if "=" not in word:
                next(words, None)
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 a check failed or the reader closed the pipe, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(invoked_command(argv)).parse_args(argv)
    try:
        with datadirs.searching(args.spec_dir):
            text = args.run(args)
        for line in getattr(args, "messages", []):  # warnings and files written, only once the command succeeded
            print(line, file=sys.stderr)
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader left (`perfsim ... | head`): point stdout at devnull so the flush at exit is quiet too,
        # as the Python docs (signal module, "Note on SIGPIPE") recommend
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except PerfsimError as err:
        return _error(str(err))
    except OSError as err:  # a path the system refuses (a name over 255 characters, no permission)
        return _error(f"{err.filename}: {err.strerror}" if err.filename else str(err))
    return getattr(args, "exit_code", 0)


def _error(message: str) -> int:
    print(f"perfsim: error: {message}", file=sys.stderr)
    return 2

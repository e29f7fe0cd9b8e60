"""`perfsim ui`: the explorer, a local web page over the Python API (perfsim.ui, docs/ui.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from perfsim.errors import PerfsimError

UI_EXTRA = "perfsim ui needs the `ui` extra: pip install 'perfsim[ui]' (Starlette and uvicorn)"


def _ui(args: argparse.Namespace) -> str:
    from perfsim.api import bounded

    bounded("port", args.port, 0, 65535)
    try:
        from perfsim.ui import app
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("starlette", "uvicorn"):
            raise PerfsimError(UI_EXTRA) from None
        raise
    sock = app.listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    print(f"perfsim ui: serving on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        app.serve(sock)
    finally:
        sock.close()
    return "perfsim ui: stopped"


def register(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    ui = add(commands, "ui", _ui, "explore a model step or an op on one or two devices in a local web page: "
             "roofline, time and energy per op, memory fit, timeline", formats=False)
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    ui.add_argument("--port", type=int, default=8050, help="TCP port to listen on (default: 8050; 0: any free port)")
    ui.add_argument("--no-browser", action="store_true", help="do not open the page in a web browser")

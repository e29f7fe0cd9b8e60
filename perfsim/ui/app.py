"""The explorer's web app (Starlette): the page, its assets, the choices it offers and the payload per input set.

    GET /              the page (static/index.html)
    GET /static/...    its script and style
    GET /api/choices   hardware and model names on the search path, dtype names, the default inputs
    GET /api/explore   view.explore() of the query's inputs as JSON; 400 {"error": one line} for a bad input
"""

from __future__ import annotations

import logging
import socket
from dataclasses import asdict
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from perfsim.errors import PerfsimError
from perfsim.output import to_json
from perfsim.ui.view import Inputs, explore, inputs_from_query

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("perfsim.ui")


def _json(data: object, status: int = 200) -> Response:
    """Strict JSON (non-finite numbers as null, as `--format json` prints them)."""
    return Response(to_json(data), status_code=status, media_type="application/json")


def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")


def choices(request: Request) -> Response:
    from perfsim.datadirs import spec_files
    from perfsim.dtypes import known_names

    return _json({"hardware": sorted(spec_files("hardware")), "model": sorted(spec_files("model")),
                  "dtype": known_names(schemes=True), "defaults": asdict(Inputs())})


def explore_endpoint(request: Request) -> Response:
    """The payload, or the PerfsimError's one line (any other failure: one line too, its traceback logged)."""
    try:
        return _json(explore(inputs_from_query(dict(request.query_params))))
    except PerfsimError as err:
        return _json({"error": str(err)}, 400)
    except Exception as err:
        log.exception("perfsim ui: internal error")
        return _json({"error": f"internal error ({type(err).__name__}: {err}); please report it"}, 500)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", index), Route("/api/choices", choices),
                             Route("/api/explore", explore_endpoint),
                             Mount("/static", StaticFiles(directory=STATIC), name="static")])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one); raise PerfsimError if it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise PerfsimError(f"--host {host}: {err.strerror}") from None
    family, kind, _, _, address = infos[0]
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise PerfsimError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return sock


def serve(sock: socket.socket) -> None:
    """Serve the app on the bound socket until interrupted (Ctrl-C)."""
    config = uvicorn.Config(create_app(), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])

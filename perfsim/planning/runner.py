"""Run sweep points in chunks: in this process (workers=1), on a local process pool, or on a Dask cluster.

Points go out in chunks (a few per worker, at most CHUNK_POINTS each) so that a worker pays the task
overhead once per chunk and reuses its loaded specs and models (memoised per process). With a results
path, points whose point_id is already there are kept, not computed again; the file is rewritten with
every finished chunk at most every CHECKPOINT_S seconds and when the run ends or is interrupted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfsim.errors import PerfsimError
from perfsim.planning import results
from perfsim.planning.evaluate import evaluate_chunk
from perfsim.planning.optional import require
from perfsim.planning.sweep_spec import Point

if TYPE_CHECKING:
    import pandas as pd

CHUNK_POINTS = 500
CHUNKS_PER_WORKER = 4
CHECKPOINT_S = 2.0

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class SweepRun:
    """The sweep's rows in point order, and how many were computed now or kept from the results file."""

    frame: pd.DataFrame
    computed: int
    kept: int


def chunks(points: list[Point], workers: int) -> list[list[Point]]:
    """`points` cut into about CHUNKS_PER_WORKER chunks per worker, each at most CHUNK_POINTS."""
    size = max(1, min(CHUNK_POINTS, -(-len(points) // (workers * CHUNKS_PER_WORKER))))
    return [points[i:i + size] for i in range(0, len(points), size)]


def run(points: list[Point], output: Path | None = None, workers: int | None = None, dask: str | None = None,
        on_progress: Callable[[int, int], None] | None = None) -> SweepRun:
    """Evaluate every point not already in `output` and return all rows in point order.

    `workers`: processes (default: the CPU count; 1 runs in this process); `dask`: a scheduler address
    (workers then come from the cluster). `on_progress(done, total)` is called as chunks finish.
    Raise PerfsimError for workers < 1 or a results file that cannot be read or written.
    """
    import pandas as pd

    if workers is not None and workers < 1:
        raise PerfsimError(f"--workers must be at least 1, got {workers}")
    if output is not None:
        results.check_path(output)
    previous = results.read(output) if output is not None else None
    wanted = {point.point_id for point in points}
    kept: Rows = [] if previous is None else [
        row for row in previous.to_dict("records") if row["point_id"] in wanted]
    finished = {row["point_id"] for row in kept}
    missing = [point for point in points if point.point_id not in finished]
    rows, saved_at = list(kept), time.monotonic()
    try:
        for done, chunk_rows in _evaluated(missing, workers, dask):
            rows += chunk_rows
            if on_progress is not None:
                on_progress(done, len(missing))
            if output is not None and time.monotonic() - saved_at > CHECKPOINT_S:
                results.write(pd.DataFrame.from_records(rows), output)
                saved_at = time.monotonic()
    finally:
        if output is not None and len(rows) > len(kept):
            results.write(pd.DataFrame.from_records(_in_order(rows, points)), output)
    frame = pd.DataFrame.from_records(_in_order(rows, points))
    return SweepRun(frame, len(rows) - len(kept), len(kept))


def _in_order(rows: Rows, points: list[Point]) -> Rows:
    position = {point.point_id: i for i, point in enumerate(points)}
    return sorted(rows, key=lambda row: position.get(row["point_id"], len(position)))


def _evaluated(points: list[Point], workers: int | None, dask: str | None) -> Iterator[tuple[int, Rows]]:
    """(points done so far, the rows of one finished chunk), chunk by chunk as they finish."""
    if not points:
        return
    if dask is not None:
        yield from _on_dask(points, dask)
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        done = 0
        for chunk in chunks(points, 1):
            done += len(chunk)
            yield done, evaluate_chunk(chunk)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from _as_finished({pool.submit(evaluate_chunk, chunk): len(chunk) for chunk in chunks(points, workers)})


def _as_finished(futures: dict[Future, int]) -> Iterator[tuple[int, Rows]]:
    done = 0
    for future in as_completed(futures):
        done += futures[future]
        yield done, future.result()


def _on_dask(points: list[Point], address: str) -> Iterator[tuple[int, Rows]]:
    """The chunks run on the Dask cluster at `address`, as many chunks per worker as on a local pool."""
    distributed = require("distributed", "--dask")
    try:
        client = distributed.Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise PerfsimError(f"--dask {address}: cannot reach the scheduler: {err}") from None
    try:
        workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        pieces = chunks(points, workers)
        futures = client.map(evaluate_chunk, pieces, pure=False)
        sizes = {future.key: len(piece) for future, piece in zip(futures, pieces, strict=True)}
        done = 0
        for future in distributed.as_completed(futures, loop=client.loop):
            done += sizes[future.key]
            yield done, future.result()
    finally:
        client.close()

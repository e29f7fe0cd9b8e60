"""The results file of a sweep: .parquet (needs pyarrow) or .csv, one row per finished point."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from perfsim.errors import PerfsimError
from perfsim.planning.optional import require

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".parquet", ".csv")


def check_path(path: Path) -> None:
    """Raise PerfsimError for a suffix other than .parquet or .csv, or a .parquet without pyarrow."""
    if path.suffix not in SUFFIXES:
        raise PerfsimError(f"-o {path}: the results file must end in .parquet or .csv")
    if path.suffix == ".parquet":
        require("pyarrow", "a .parquet results file")


def read(path: Path) -> pd.DataFrame | None:
    """The rows already in `path`, or None if it does not exist. Raise PerfsimError if it cannot be read or
    has no point_id column (not a sweep's results)."""
    import pandas as pd

    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise PerfsimError(f"{path}: cannot read the results: {err}") from None
    if "point_id" not in frame.columns:
        raise PerfsimError(f"{path}: has no point_id column, so it is not a sweep's results; give a new file")
    return frame


def write(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` atomically (a temporary file renamed), so an interrupted write loses nothing."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(partial,
                                                                                                      index=False)
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, path)
    except OSError as err:
        raise PerfsimError(f"cannot write {path}: {err.strerror}") from None

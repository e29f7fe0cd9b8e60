"""Counting what a reference kernel really does: FLOPs performed and bytes moved per level."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Counter:
    """FLOPs, table lookups and bytes, tallied by the reference kernels as they run.

    `read(x, fmt_bytes)` and `write(x, fmt_bytes)` count x.size elements at the storage
    width of the format the cost model assumes (not numpy's working dtype).
    """

    flops: float = 0.0
    lookups: int = 0
    table_adds: int = 0
    reads: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    writes: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def read(self, x: np.ndarray | float, bytes_per_element: float, level: str = "main") -> None:
        self.reads[level] += (x.size if isinstance(x, np.ndarray) else x) * bytes_per_element

    def write(self, x: np.ndarray | float, bytes_per_element: float, level: str = "main") -> None:
        self.writes[level] += (x.size if isinstance(x, np.ndarray) else x) * bytes_per_element

    def ops(self, n: float) -> None:
        self.flops += n

    @property
    def bytes(self) -> float:
        return sum(self.reads.values()) + sum(self.writes.values())

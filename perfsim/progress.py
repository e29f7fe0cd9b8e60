"""A progress bar on stderr for runs that take longer than a second, for a person at a terminal.

    if on_terminal():
        bar = Progress(total=10_000, unit="requests")
    ...
    bar.update(done)

Callers draw a bar only when on_terminal() (stderr is a terminal: never into CI logs, files or pipes).
Nothing is drawn before `delay_s` (1 s) has passed, so short runs stay silent; then at most 10 times
a second, with the time taken and an estimate of the time left. One implementation for every long run
(serving today; validation, sweeps and long simulations as they gain a per-item hook).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_CHARS = 30
REDRAW_S = 0.1


def on_terminal() -> bool:
    """Whether a person watches stderr (a terminal), so that a progress bar is worth drawing."""
    return sys.stderr.isatty()


class Progress:
    """`done` of `total` `unit`s drawn as one line on `stream` (default: stderr), redrawn in place.

    Raise ValueError if `total` is not positive.
    """

    def __init__(self, total: int, unit: str, delay_s: float = 1.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total <= 0:
            raise ValueError(f"a progress bar needs a positive total, got {total}")
        self.total, self.unit, self.delay_s, self.clock = total, unit, delay_s, clock
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.shown = clock()
        self.finished = False

    def update(self, done: int) -> None:
        """Record that `done` units are finished; redraw if the bar is due (the last unit always is)."""
        if self.finished:
            return
        now = self.clock()
        last = done >= self.total
        if now - self.start < self.delay_s or (now - self.shown < REDRAW_S and not last):
            return
        self.shown = now
        self.stream.write(f"\r{self.line(done, now - self.start)}")
        if last:
            self.stream.write("\n")
            self.finished = True
        self.stream.flush()

    def line(self, done: int, elapsed_s: float) -> str:
        """`[###############...............] 500/1,000 requests, 3 s, ~3 s left`; once done, the bar and count."""
        filled = BAR_CHARS * min(done, self.total) // self.total
        bar = f"[{'#' * filled}{'.' * (BAR_CHARS - filled)}] {done:,}/{self.total:,} {self.unit}"
        if done >= self.total:
            return bar
        left = f", ~{elapsed_s * (self.total - done) / done:.0f} s left" if done > 0 else ""
        return f"{bar}, {elapsed_s:.0f} s{left}"

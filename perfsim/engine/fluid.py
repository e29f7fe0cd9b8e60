"""Processor sharing on simpy: flows that share resources progress at the pace of their most-shared one.

A flow demands `d_k` seconds of each resource k (its time on k when alone). With n_k
flows on k, each gets 1/n_k of it, so a flow needs max_k n_k · d_k seconds per unit of
its work (its slowdown); alone it finishes in max_k d_k — the roofline, exactly. Rates
are recomputed on every arrival and departure, and only the next completion is scheduled.

Progress is guaranteed: a wake-up finishes the flow it was scheduled for (the one with the
least time left), whether or not the clock could move by that time, and with it every flow
whose time left is within `RELATIVE_TIME` of the clock (float round-off of the schedule).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import simpy

RELATIVE_TIME = 1e-12  # a flow with under now × this many seconds left is done (≈ 4,500 ulps of the clock)


@dataclass(eq=False)
class Flow:
    """Demand seconds per resource, the fraction of work left, and the seconds one unit of work now takes."""

    demands: dict[str, float]
    done: simpy.Event
    remaining: float = 1.0
    slowdown: float = 0.0

    @property
    def time_left_s(self) -> float:
        return self.remaining * self.slowdown


class FluidPool:
    """All processor-shared resources of one simulation (memory levels and links of every chip)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.flows: list[Flow] = []
        self._last = env.now
        self._version = 0

    def run(self, demands: dict[str, float]) -> simpy.Event:
        """Start a flow; the returned event fires when it completes. Raise ValueError on a negative demand."""
        if any(d < 0 for d in demands.values()):
            raise ValueError(f"negative demand in {demands}")
        active = {k: d for k, d in demands.items() if d > 0}
        flow = Flow(active, self.env.event())
        if not active:
            flow.done.succeed()
            return flow.done
        self._advance()
        self.flows.append(flow)
        self._reschedule()
        return flow.done

    def _advance(self) -> None:
        elapsed = self.env.now - self._last
        if elapsed > 0:
            for f in self.flows:
                f.remaining -= elapsed / f.slowdown
        self._last = self.env.now

    def _reschedule(self) -> None:
        users = Counter(k for f in self.flows for k in f.demands)
        for f in self.flows:
            f.slowdown = max(users[k] * d for k, d in f.demands.items())
        self._version += 1
        if self.flows:
            version = self._version
            wake = self.env.timeout(max(0.0, min(f.time_left_s for f in self.flows)))
            wake.callbacks.append(lambda _: self._wake(version))

    def _wake(self, version: int) -> None:
        if version != self._version:
            return
        self._advance()
        first = min(self.flows, key=lambda f: f.time_left_s)
        tolerance = RELATIVE_TIME * self.env.now
        finished = [f for f in self.flows if f is first or f.time_left_s <= tolerance]
        for f in finished:
            self.flows.remove(f)
            f.done.succeed()
        self._reschedule()

"""The registry of reference checks behind `perfsim verify`.

A check runs a numpy reference on small real tensors and compares it with an exact
answer (numerics) and with the cost model (FLOP and byte counts). Register one with
`@check("name", op="softmax", variant="two_pass")`; the function returns a Outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    """What a check found: the worst error against its bound, and whether the counts agree.

    `counts_match` is None where the check compares no counts (number formats).
    """

    max_abs_error: float
    tolerance: float
    counts_match: bool | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance and self.counts_match is not False


@dataclass(frozen=True)
class Check:
    name: str
    op: str
    variant: str
    run: Callable[[], Outcome] = field(compare=False)


CHECKS: list[Check] = []


def check(name: str, op: str, variant: str) -> Callable[[Callable[[], Outcome]], Callable[[], Outcome]]:
    """Register `fn` as the check `name` of `op` (an op KIND or `format`) and `variant`."""

    def register(fn: Callable[[], Outcome]) -> Callable[[], Outcome]:
        if any(c.name == name for c in CHECKS):
            raise ValueError(f"check {name} registered twice")
        CHECKS.append(Check(name, op, variant, fn))
        return fn

    return register


def run_checks() -> list[dict[str, object]]:
    """Run every registered check; a check that raises counts as failed with the error in `detail`."""
    from perfsim.reference import load_all

    load_all()
    rows = []
    for c in CHECKS:
        try:
            outcome = c.run()
        except Exception as err:  # a broken check is a failed check, reported, never a crash
            outcome = Outcome(float("inf"), 0.0, False, f"{type(err).__name__}: {err}")
        rows.append({"check": c.name, "op": c.op, "variant": c.variant, "passed": outcome.passed,
                     "max_abs_error": outcome.max_abs_error, "tolerance": outcome.tolerance,
                     "counts_match": outcome.counts_match, "detail": outcome.detail})
    return rows

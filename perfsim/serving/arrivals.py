"""Request arrivals: Poisson at a rate or a CSV trace; lengths fixed or drawn from a named distribution.

A length is an integer (`512`) or `NAME:PARAMS`: `uniform:LOW:HIGH`, `exponential:MEAN`,
`normal:MEAN:STD`, `lognormal:MEDIAN:SIGMA` (each drawn value rounded and clipped to ≥ 1).
Everything is drawn from one seeded generator, lazily, so a million requests cost no memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsim.errors import PerfsimError

DISTRIBUTIONS: dict[str, tuple[int, Callable[[np.random.Generator, list[float]], float]]] = {
    "uniform": (2, lambda rng, p: rng.uniform(p[0], p[1])),
    "exponential": (1, lambda rng, p: rng.exponential(p[0])),
    "normal": (2, lambda rng, p: rng.normal(p[0], p[1])),
    "lognormal": (2, lambda rng, p: p[0] * np.exp(rng.normal(0.0, p[1]))),
}


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float
    prompt_len: int
    output_len: int


def length_sampler(spec: str, what: str) -> Callable[[np.random.Generator], int]:
    """A function drawing one length; Raise PerfsimError for an unknown name or bad parameters."""
    name, _, params = str(spec).partition(":")
    if not params:
        try:
            value = int(name)
        except ValueError:
            raise PerfsimError(f"--{what}: '{spec}' is neither a length nor NAME:PARAMS "
                               f"({', '.join(DISTRIBUTIONS)})") from None
        if value < 1:
            raise PerfsimError(f"--{what}: must be at least 1, got {value}")
        return lambda rng: value
    if name not in DISTRIBUTIONS:
        raise PerfsimError(f"--{what}: unknown distribution '{name}' (known: {', '.join(DISTRIBUTIONS)})")
    count, draw = DISTRIBUTIONS[name]
    try:
        values = [float(v) for v in params.split(":")]
    except ValueError:
        raise PerfsimError(f"--{what}: parameters of '{spec}' must be numbers") from None
    if len(values) != count or any(v < 0 for v in values):
        raise PerfsimError(f"--{what}: {name} takes {count} non-negative parameter(s), got '{params}'")
    return lambda rng: max(1, round(draw(rng, values)))


def poisson(rate: float, count: int, prompt: str, output: str, seed: int) -> Iterator[Request]:
    """`count` requests with exponential inter-arrival times of mean 1 / rate."""
    if rate <= 0 or count < 1:
        raise PerfsimError(f"--rate must be positive and --requests at least 1, got {rate} and {count}")
    rng = np.random.default_rng(seed)
    prompt_len, output_len = length_sampler(prompt, "prompt-len"), length_sampler(output, "output-len")
    now = 0.0
    for i in range(count):
        now += rng.exponential(1.0 / rate)
        yield Request(i, now, prompt_len(rng), output_len(rng))


def from_csv(path: Path) -> Iterator[Request]:
    """Requests from a CSV with columns arrival_s, prompt_len, output_len (sorted by arrival)."""
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise PerfsimError(f"{path}: cannot read ({err.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"arrival_s", "prompt_len", "output_len"} - set(reader.fieldnames or [])
        if missing:
            raise PerfsimError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        previous = 0.0
        for i, row in enumerate(reader):
            try:
                request = Request(i, float(row["arrival_s"]), int(row["prompt_len"]), int(row["output_len"]))
            except ValueError:
                raise PerfsimError(f"{path}: line {i + 2}: not numbers: {row}") from None
            if request.arrival_s < previous or request.prompt_len < 1 or request.output_len < 1:
                raise PerfsimError(f"{path}: line {i + 2}: arrivals must be sorted and lengths at least 1")
            previous = request.arrival_s
            yield request

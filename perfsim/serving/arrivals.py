"""Request arrivals: Poisson at a rate or a CSV trace; lengths fixed or drawn from a named distribution.

A length is an integer (`512`) or `NAME:PARAMS`: `uniform:LOW:HIGH`, `exponential:MEAN`,
`normal:MEAN:STD`, `lognormal:MEDIAN:SIGMA` (each drawn value rounded and clipped to ≥ 1).
Everything is drawn from one seeded generator, lazily, so a million requests cost no memory.

Arrival times are finite, non-negative and at most HORIZON_S: the simulated clock is a float,
and past ~10^8 s its resolution (~15 ns) starts to eat the microsecond step costs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import IO

import numpy as np

from perfsim.errors import PerfsimError

HORIZON_S = 1e8  # latest arrival, s (~3.2 years)
MAX_LENGTH = 2**31 - 1  # tokens; longer than any model's context
MAX_LINE = 4096  # characters in one CSV line


@dataclass(frozen=True)
class Distribution:
    """A named length distribution: its parameter names, a check of their values, and a draw."""

    params: tuple[str, ...]
    valid: Callable[[list[float]], bool]
    rule: str
    draw: Callable[[np.random.Generator, list[float]], float]


DISTRIBUTIONS = {
    "uniform": Distribution(("LOW", "HIGH"), lambda p: 0 <= p[0] <= p[1], "0 ≤ LOW ≤ HIGH",
                            lambda rng, p: rng.uniform(p[0], p[1])),
    "exponential": Distribution(("MEAN",), lambda p: p[0] > 0, "MEAN > 0", lambda rng, p: rng.exponential(p[0])),
    "normal": Distribution(("MEAN", "STD"), lambda p: p[0] > 0 and p[1] >= 0, "MEAN > 0, STD ≥ 0",
                           lambda rng, p: rng.normal(p[0], p[1])),
    "lognormal": Distribution(("MEDIAN", "SIGMA"), lambda p: p[0] > 0 and p[1] >= 0, "MEDIAN > 0, SIGMA ≥ 0",
                              lambda rng, p: p[0] * np.exp(rng.normal(0.0, p[1]))),
}


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float
    prompt_len: int
    output_len: int


def length_sampler(spec: str, what: str) -> Callable[[np.random.Generator], int]:
    """A function drawing one length; Raise PerfsimError for an unknown name or bad parameters
    (and, when drawing, for a draw beyond MAX_LENGTH tokens)."""
    name, _, params = str(spec).partition(":")
    if not params:
        try:
            value = int(name)
        except ValueError:
            raise PerfsimError(f"--{what}: '{spec}' is neither a length nor NAME:PARAMS "
                               f"({', '.join(DISTRIBUTIONS)})") from None
        if not 1 <= value <= MAX_LENGTH:
            raise PerfsimError(f"--{what}: a length is 1 to {MAX_LENGTH:,} tokens, got {_short(name)}")
        return lambda rng: value
    if name not in DISTRIBUTIONS:
        raise PerfsimError(f"--{what}: unknown distribution '{name}' (known: {', '.join(DISTRIBUTIONS)})")
    law = DISTRIBUTIONS[name]
    usage = f"{name}:{':'.join(law.params)}"
    try:
        values = [float(v) for v in params.split(":")]
    except ValueError:
        raise PerfsimError(f"--{what}: parameters of '{_short(spec)}' must be numbers ({usage})") from None
    if len(values) != len(law.params) or not all(math.isfinite(v) for v in values) or not law.valid(values):
        raise PerfsimError(f"--{what}: '{_short(spec)}' is not {usage} with finite {law.rule}")

    def sample(rng: np.random.Generator) -> int:
        drawn = float(law.draw(rng, values))
        if not drawn <= MAX_LENGTH:  # also catches an overflow to inf
            raise PerfsimError(f"--{what}: '{spec}' drew {drawn:.3g} tokens, more than any context "
                               f"({MAX_LENGTH:,})")
        return max(1, round(drawn))

    return sample


def poisson(rate: float, count: int, prompt: str, output: str, seed: int) -> Iterator[Request]:
    """`count` requests with exponential inter-arrival times of mean 1 / rate (per s).

    Raise PerfsimError for a rate that is not positive and finite, a count below 1, a
    negative seed, bad lengths, or an arrival past HORIZON_S.
    """
    if not (math.isfinite(rate) and rate > 0):
        raise PerfsimError(f"--rate must be positive and finite, got {rate}")
    if count < 1:
        raise PerfsimError(f"--requests must be at least 1, got {count}")
    if seed < 0:
        raise PerfsimError(f"--seed must be a non-negative integer, got {seed}")
    prompt_len, output_len = length_sampler(prompt, "prompt-len"), length_sampler(output, "output-len")
    return _poisson(np.random.default_rng(seed), rate, count, prompt_len, output_len)


def _poisson(rng: np.random.Generator, rate: float, count: int, prompt_len, output_len) -> Iterator[Request]:
    now = 0.0
    for i in range(count):
        now += rng.exponential(1.0 / rate)
        _check_arrival(now, f"--rate {rate:g}: request {i}")
        yield Request(i, now, prompt_len(rng), output_len(rng))


def from_csv(path: Path) -> Iterator[Request]:
    """Requests from a UTF-8 CSV with columns arrival_s, prompt_len, output_len (sorted by arrival).

    Raise PerfsimError (naming the file and line) for an unreadable or non-UTF-8 file, a
    missing column, a row with too few or too many fields, a value that is not a number, an
    unsorted, non-finite or too late arrival, a length below 1, or no rows at all.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise PerfsimError(f"{path}: cannot read ({err.strerror})") from None
    with handle:
        try:
            yield from _rows(path, csv.DictReader(_lines(path, handle)))
        except UnicodeDecodeError:
            raise PerfsimError(f"{path}: not UTF-8 text") from None
        except csv.Error as err:
            raise PerfsimError(f"{path}: not a CSV file ({err})") from None
        except OSError as err:
            raise PerfsimError(f"{path}: cannot read ({err.strerror})") from None


def _rows(path: Path, reader: csv.DictReader) -> Iterator[Request]:
    missing = {"arrival_s", "prompt_len", "output_len"} - set(reader.fieldnames or [])
    if missing:
        raise PerfsimError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    previous = 0.0
    i = -1
    for i, row in enumerate(reader):
        line = reader.line_num
        if None in row or None in row.values():
            raise PerfsimError(f"{path}: line {line}: {len(reader.fieldnames)} fields expected, as in the header")
        try:
            request = Request(i, float(row["arrival_s"]), int(row["prompt_len"]), int(row["output_len"]))
        except ValueError:
            raise PerfsimError(f"{path}: line {line}: arrival_s must be a number and the lengths integers") from None
        _check_arrival(request.arrival_s, f"{path}: line {line}")
        if request.arrival_s < previous:
            raise PerfsimError(f"{path}: line {line}: arrivals must be sorted ({request.arrival_s:g} s after "
                               f"{previous:g} s)")
        if not (1 <= request.prompt_len <= MAX_LENGTH and 1 <= request.output_len <= MAX_LENGTH):
            raise PerfsimError(f"{path}: line {line}: lengths must be 1 to {MAX_LENGTH:,} tokens")
        previous = request.arrival_s
        yield request
    if i < 0:
        raise PerfsimError(f"{path}: no requests (a header but no rows)")


def _lines(path: Path, handle: IO[str]) -> Iterator[str]:
    """The file's lines, each at most MAX_LINE characters (so /dev/zero is refused, not read forever)."""
    for number in count(1):
        line = handle.readline(MAX_LINE)
        if not line:
            return
        if len(line) == MAX_LINE and not line.endswith("\n"):
            raise PerfsimError(f"{path}: line {number} is longer than {MAX_LINE} characters")
        yield line


def _check_arrival(arrival_s: float, where: str) -> None:
    if not 0 <= arrival_s <= HORIZON_S:  # also refuses nan
        raise PerfsimError(f"{where}: arrival at {arrival_s:g} s; arrivals must lie within 0 to {HORIZON_S:g} s, "
                           "where the simulated clock still resolves step times")


def _short(text: str, limit: int = 40) -> str:
    """`text`, elided past `limit` characters (a 400-digit number stays one readable line)."""
    return text if len(text) <= limit else f"{text[:limit]}…"

"""Request arrivals: a process at a mean rate (Poisson, bursty gamma, on-off, diurnal) or a CSV/JSONL trace;
lengths fixed or drawn from a named distribution.

A length is an integer (`512`) or `NAME:PARAMS`: `uniform:LOW:HIGH`, `exponential:MEAN`,
`normal:MEAN:STD`, `lognormal:MEDIAN:SIGMA` (each drawn value rounded and clipped to ≥ 1).
Everything is drawn from one seeded generator, lazily, so a million requests cost no memory.

An arrival process is `poisson` (exponential gaps), `gamma:CV` (gamma gaps with coefficient of variation CV: CV > 1
is bursty), `onoff:ON_S:OFF_S` (Poisson during ON_S-second bursts, nothing for OFF_S seconds between them) or
`diurnal:AMPLITUDE:PERIOD_S` (Poisson with rate(t) = rate · (1 + AMPLITUDE · sin(2π t / PERIOD_S)), 0 ≤ AMPLITUDE < 1).
`rate` is always the long-run mean. Each process maps the same unit-mean draws through its own clock, so one seed
gives the same requests at every rate, their gaps scaled by 1 / rate.

Arrival times are finite, non-negative and at most HORIZON_S: the simulated clock is a float,
and past ~10^8 s its resolution (~15 ns) starts to eat the microsecond step costs.
"""

from __future__ import annotations

import csv
import json
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


@dataclass(frozen=True, slots=True)
class Request:
    """One request. Its first `prefix_len` prompt tokens are shared by every request naming `prefix_id` (a system
    prompt); a turn of `conversation_id` starts with the previous turn's prompt and output."""

    id: int
    arrival_s: float
    prompt_len: int
    output_len: int
    prefix_id: str | None = None
    prefix_len: int = 0
    conversation_id: str | None = None


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


def poisson(rate: float, count: int, prompt: str, output: str, seed: int,
            process: str = "poisson") -> Iterator[Request]:
    """`count` requests arriving by `process` at a mean of `rate` per s (exponential gaps of mean 1 / rate by default).

    Raise PerfsimError for a rate that is not positive and finite, a count below 1, a
    negative seed, bad lengths, a bad process, or an arrival past HORIZON_S.
    """
    if not (math.isfinite(rate) and rate > 0):
        raise PerfsimError(f"--rate must be positive and finite, got {rate}")
    if count < 1:
        raise PerfsimError(f"--requests must be at least 1, got {count}")
    if seed < 0:
        raise PerfsimError(f"--seed must be a non-negative integer, got {seed}")
    prompt_len, output_len = length_sampler(prompt, "prompt-len"), length_sampler(output, "output-len")
    clock = arrival_process(process)
    return _arrivals(np.random.default_rng(seed), rate, count, prompt_len, output_len, clock)


def _arrivals(rng: np.random.Generator, rate: float, count: int, prompt_len, output_len,
              clock: Clock) -> Iterator[Request]:
    work = now = 0.0  # the arrivals so far in unit-rate time (requests), and seconds
    scale = 1.0 / rate
    for i in range(count):
        gap = clock.gap(rng)
        work += gap
        now = now + gap * scale if clock.time is None else clock.time(work, rate)
        _check_arrival(now, f"--rate {rate:g}: request {i}")
        yield Request(i, now, prompt_len(rng), output_len(rng))


@dataclass(frozen=True)
class Clock:
    """An arrival process: `gap` draws a unit-mean gap; `time` maps the running sum of gaps (arrivals so far)
    to seconds at mean `rate` (None: a renewal process, each gap lasting gap / rate seconds)."""

    gap: Callable[[np.random.Generator], float]
    time: Callable[[float, float], float] | None = None


MAX_CV = 1e6
"""The largest coefficient of variation gamma arrivals take; 1 / MAX_CV is the smallest (both keep the gamma's shape
and scale finite and positive)."""


def arrival_process(spec: str) -> Clock:
    """The process named by `spec` (see the module doc). Raise PerfsimError for an unknown name or bad parameters."""
    name, _, params = str(spec).partition(":")
    usage = {"poisson": "poisson", "gamma": "gamma:CV", "onoff": "onoff:ON_S:OFF_S",
             "diurnal": "diurnal:AMPLITUDE:PERIOD_S"}
    if name not in usage:
        raise PerfsimError(f"--arrivals: unknown process '{_short(spec)}' (known: {', '.join(usage.values())})")
    try:
        values = [float(v) for v in params.split(":")] if params else []
    except ValueError:
        values = [math.nan]
    wanted = usage[name].count(":")
    if len(values) != wanted or not all(math.isfinite(v) for v in values):
        raise PerfsimError(f"--arrivals: '{_short(spec)}' is not {usage[name]} with finite numbers")
    if name == "poisson":
        return Clock(lambda rng: rng.exponential(1.0))
    if name == "gamma":
        if not 1 / MAX_CV <= values[0] <= MAX_CV:  # beyond, the shape 1 / CV² is no longer a positive finite float
            raise PerfsimError(f"--arrivals: gamma's CV must be positive, from {1 / MAX_CV:g} to {MAX_CV:g}, got "
                               f"{values[0]:g}")
        shape = 1 / values[0] ** 2  # a gamma of shape k has CV 1 / √k; scale 1 / k keeps the mean 1
        return Clock(lambda rng: rng.gamma(shape, 1 / shape))
    if name == "onoff":
        on, off = values
        if not (on > 0 and off >= 0):
            raise PerfsimError(f"--arrivals: onoff needs ON_S > 0 and OFF_S ≥ 0, got {on:g} and {off:g}")

        def on_off(work: float, rate: float) -> float:
            busy = work / (rate * (on + off) / on)  # seconds of ON time: the ON rate keeps the mean at `rate`
            return math.floor(busy / on) * (on + off) + busy % on

        return Clock(lambda rng: rng.exponential(1.0), on_off)
    amplitude, period = values
    if not (0 <= amplitude < 1 and period > 0):
        raise PerfsimError(f"--arrivals: diurnal needs 0 ≤ AMPLITUDE < 1 and PERIOD_S > 0, got {amplitude:g} and "
                           f"{period:g}")
    return Clock(lambda rng: rng.exponential(1.0), lambda work, rate: _diurnal_time(work / rate, amplitude, period))


def _diurnal_time(mean_s: float, amplitude: float, period: float) -> float:
    """The t with ∫₀ᵗ (1 + A sin(2π u / P)) du = t + A P / 2π · (1 − cos(2π t / P)) = mean_s (Newton's method; the
    integral rises monotonically since A < 1)."""
    w = 2 * math.pi / period
    t = mean_s
    for _ in range(50):
        error = t + amplitude / w * (1 - math.cos(w * t)) - mean_s
        t -= error / (1 + amplitude * math.sin(w * t))
        if abs(error) <= 1e-12 * max(1.0, mean_s):
            break
    return t


def from_csv(path: Path) -> Iterator[Request]:
    """Requests from a UTF-8 CSV with columns arrival_s, prompt_len, output_len (sorted by arrival) and optional
    prefix_id, prefix_len, conversation_id.

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
        request = _request(i, row, f"{path}: line {line}", previous)
        previous = request.arrival_s
        yield request
    if i < 0:
        raise PerfsimError(f"{path}: no requests (a header but no rows)")


def _request(i: int, row: dict, where: str, previous: float) -> Request:
    """Request `i` from a trace row (CSV strings or JSON values); `previous` is the arrival before it."""
    try:
        request = Request(i, float(row["arrival_s"]), _integer(row["prompt_len"]), _integer(row["output_len"]),
                          _key(row.get("prefix_id")), _integer(row.get("prefix_len") or 0),
                          _key(row.get("conversation_id")))
    except (ValueError, TypeError):
        raise PerfsimError(f"{where}: arrival_s must be a number and the lengths integers") from None
    _check_arrival(request.arrival_s, where)
    if request.arrival_s < previous:
        raise PerfsimError(f"{where}: arrivals must be sorted ({request.arrival_s:g} s after {previous:g} s)")
    if not (1 <= request.prompt_len <= MAX_LENGTH and 1 <= request.output_len <= MAX_LENGTH):
        raise PerfsimError(f"{where}: lengths must be 1 to {MAX_LENGTH:,} tokens")
    if not 0 <= request.prefix_len <= request.prompt_len:
        raise PerfsimError(f"{where}: prefix_len must be 0 to prompt_len ({request.prompt_len})")
    if request.prefix_len and request.prefix_id is None:
        raise PerfsimError(f"{where}: prefix_len needs a prefix_id")
    return request


def _integer(value: object) -> int:
    """An integer from an int or a decimal string (a JSON float or bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(value)
    return int(value)


def _key(value: object) -> str | None:
    """A prefix or conversation id: None when absent or empty."""
    return None if value is None or value == "" else str(value)


def from_jsonl(path: Path) -> Iterator[Request]:
    """Requests from a UTF-8 JSON-lines file: one object a line with arrival_s, prompt_len, output_len and optional
    prefix_id, prefix_len, conversation_id (sorted by arrival; blank lines skipped).

    Raise PerfsimError (naming the file and line) as from_csv does, and for a line that is not a JSON object.
    """
    try:
        handle = path.open(encoding="utf-8-sig")
    except OSError as err:
        raise PerfsimError(f"{path}: cannot read ({err.strerror})") from None
    previous, i = 0.0, -1
    with handle:
        try:
            for number, line in enumerate(_lines(path, handle), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise PerfsimError(f"{path}: line {number}: not JSON") from None
                if not isinstance(row, dict):
                    raise PerfsimError(f"{path}: line {number}: not a JSON object")
                missing = {"arrival_s", "prompt_len", "output_len"} - set(row)
                if missing:
                    raise PerfsimError(f"{path}: line {number}: missing {', '.join(sorted(missing))}")
                i += 1
                request = _request(i, row, f"{path}: line {number}", previous)
                previous = request.arrival_s
                yield request
        except UnicodeDecodeError:
            raise PerfsimError(f"{path}: not UTF-8 text") from None
    if i < 0:
        raise PerfsimError(f"{path}: no requests")


def from_trace(path: Path) -> Iterator[Request]:
    """Requests from a trace: JSON lines if the name ends in .jsonl, else CSV."""
    return from_jsonl(path) if path.suffix.lower() == ".jsonl" else from_csv(path)


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

"""Step costs for the serving loop (one forward pass per iteration, memoised on a grid), and the KV-cache
capacity left after weights.

An iteration is one forward pass over all its tokens: decode sequences (one new token each over
its cache; k + 1 when verifying k draft tokens) and prompt chunks (ℓ new tokens over the p tokens
of the prompt already cached). The GEMMs see every token once (the weights are read once); each
piece attends on its own, ℓ · (p + (ℓ + 1) / 2) query-key pairs per sequence and head.

The analytic step adds up its ops, so a pass is the ops that see tokens (the body: T tokens), the
head (one row per sequence: S) and each piece's attention, each memoised apart on a grid — every
integer up to 16, then eight points per octave — and interpolated linearly between grid points in
T, S, and a piece's sequences and new tokens: exact where the cost is affine (attention in its
sequences; the body and head once compute- or memory-bound throughout), a fraction of a percent
high where it is convex (attention in a piece's new tokens is quadratic). Cached tokens round up
to a multiple of 128, never past the model's max_context. The DES does not add up: with
`engine="des"` a pass is simulated whole, memoised by its pieces rounded up to grid points.

With dp replicas the busiest one sets the pace: it holds ⌈n / dp⌉ of the n decode sequences, and
the prompt chunks are dealt largest first, each to the replica with the fewest prompt tokens so
far (a sequence's chunk cannot be split across replicas).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from perfsim.cost import OpCost
from perfsim.errors import PerfsimError
from perfsim.models.footprint import Footprint, footprint
from perfsim.models.scenario import Piece, Resolved, Scenario, one_per_replica
from perfsim.models.step import Engine, estimate_step
from perfsim.models.trace import HEAD_OPS
from perfsim.ops import Attention

LENGTH_BUCKET = 128  # cached tokens round up to a multiple of this
EXACT_UP_TO = 16  # grid points are every integer up to here, then POINTS_PER_OCTAVE per doubling
POINTS_PER_OCTAVE = 8


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def grid(x: float) -> tuple[int, int]:
    """The grid points lo ≤ x ≤ hi around x ≥ 1 (lo = hi when x is one)."""
    step = 1 if x <= EXACT_UP_TO else 2 ** math.floor(math.log2(x)) // POINTS_PER_OCTAVE
    lo = int(x // step) * step
    return (lo, lo) if lo == x else (lo, lo + step)


def _interpolate(f: Callable[..., np.ndarray], *point: float) -> np.ndarray:
    """f at `point`, linear in each coordinate between the grid points around it."""
    terms: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
    for x in point:
        lo, hi = grid(x)
        w = (x - lo) / (hi - lo) if hi > lo else 0.0
        terms = [((*key, lo), weight * (1 - w)) for key, weight in terms] + (
            [((*key, hi), weight * w) for key, weight in terms] if w else [])
    return sum(weight * f(*key) for key, weight in terms)  # type: ignore[return-value]


def busiest_share(chunks: Iterable[tuple[int, int]], replicas: int) -> list[tuple[int, int]]:
    """The chunks (new tokens, cached tokens) of the replica with the most new tokens, when they are dealt
    largest first, each to the replica with the fewest so far."""
    shares: list[list[tuple[int, int]]] = [[] for _ in range(replicas)]
    loads = [(0, i) for i in range(replicas)]
    for chunk in sorted(chunks, reverse=True):
        load, i = heapq.heappop(loads)
        shares[i].append(chunk)
        heapq.heappush(loads, (load + chunk[0], i))
    return max(shares, key=lambda share: sum(new for new, _ in share))


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding: `draft` proposes `length` tokens, the target verifies them in one step.

    With each draft token accepted independently with probability `acceptance` (α), a
    step yields (1 − α^(k+1)) / (1 − α) tokens per sequence in expectation (Leviathan et
    al., 2023): the accepted prefix plus the target's own next token.
    """

    draft: Scenario
    length: int
    acceptance: float

    def __post_init__(self) -> None:
        if self.length < 1 or not 0 <= self.acceptance < 1:
            raise PerfsimError(f"speculation needs draft length ≥ 1 and 0 ≤ acceptance < 1, got {self.length} "
                               f"and {self.acceptance}")

    @property
    def tokens_per_step(self) -> float:
        alpha, k = self.acceptance, self.length
        return (1 - alpha ** (k + 1)) / (1 - alpha)


class IterationCost(NamedTuple):
    """A serving iteration: its seconds, the joules of every chip's ops in it (NaN when unknown) and the
    chip-seconds those ops keep chips busy (the rest of devices × seconds the chips wait)."""

    seconds: float
    energy_j: float
    busy_chip_s: float


def _totals(step_s: float, runs: Iterable[tuple[OpCost, int, int]]) -> np.ndarray:
    """[seconds, joules, busy chip-seconds] of ops run (cost, times, chips each time); NaN joules if unknown."""
    energy = busy = 0.0
    for c, times, chips in runs:
        energy += times * chips * (math.nan if c.energy_j is None else c.energy_j)
        busy += times * chips * c.time_s
    return np.array([step_s, energy, busy])


class ForwardPass:
    """[seconds, joules, busy chip-seconds] of one forward pass of `scenario`'s model over pieces: the
    seconds of one DP replica's share; joules and chip-seconds of every replica doing that share."""

    def __init__(self, scenario: Scenario, engine: Engine) -> None:
        self.template = one_per_replica(scenario.model_copy(update={"phase": "prefill", "prompt_len": 1,
                                                                    "context": 0}))
        self.engine = engine
        self.evaluations = 0
        self._parts: dict[Piece, dict[str, np.ndarray]] = {}
        self._values: dict[tuple[str, int, int, int], np.ndarray] = {}
        self._whole: dict[tuple[Piece, ...], np.ndarray] = {}

    def cost(self, pieces: Iterable[tuple[int, int, float]]) -> np.ndarray:
        """One pass over pieces (sequences, new tokens each, cached tokens each)."""
        pieces = [(seqs, new, self._cached(cached, new)) for seqs, new, cached in pieces]
        if self.engine == "des":
            return self._simulated(pieces)
        total: np.ndarray = np.zeros(3)
        tokens = seqs = 0
        for piece in pieces:
            total += self._interpolated("attention", *piece)
            tokens += piece[0] * piece[1]
            seqs += piece[0]
        return total + self._interpolated("body", 1, tokens, 0) + self._interpolated("head", seqs, 1, 0)

    def _interpolated(self, part: str, seqs: int, new: int, cached: int) -> np.ndarray:
        """`part` of a pass over Piece(seqs, new, cached), from the grid points around it."""
        key = (part, seqs, new, cached)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = _interpolate(lambda s, n: self._part(Piece(s, n, cached))[part], seqs, new)
        return value

    def _cached(self, tokens: float, new: int) -> int:
        """Cached tokens rounded up to a bucket within max_context (never below the exact count)."""
        exact = math.ceil(tokens)
        return min(_round_up(exact, LENGTH_BUCKET), max(exact, self.template.model.max_context - new))

    def _part(self, piece: Piece) -> dict[str, np.ndarray]:
        """The body, the head and the attention in a pass over `piece` alone."""
        if piece not in self._parts:
            step = estimate_step(replace(self.template, mix=(piece,)), check_memory=False)
            parts = {name: np.zeros(3) for name in ("body", "head", "attention")}
            for c, t in zip(step.costs, step.trace.ops, strict=True):
                part = "attention" if isinstance(t.op, Attention) else "head" if t.op.label in HEAD_OPS else "body"
                parts[part] += _totals(c.time_s * t.repeat, [(c, t.repeat, len(t.chips))])
            self._parts[piece] = parts
            self.evaluations += 1
        return self._parts[piece]

    def _simulated(self, pieces: list[tuple[int, int, int]]) -> np.ndarray:
        """The whole pass simulated, pieces of one shape merged, sequences and new tokens rounded up to grid points."""
        merged: Counter[tuple[int, int]] = Counter()
        for seqs, new, cached in pieces:
            merged[grid(new)[1], cached] += seqs
        mix = tuple(sorted(Piece(grid(seqs)[1], new, cached) for (new, cached), seqs in merged.items()))
        if mix not in self._whole:
            step = estimate_step(replace(self.template, mix=mix), engine="des", check_memory=False)
            self._whole[mix] = _totals(step.step_s, [(c, t.repeat, len(t.chips))
                                                      for c, t in zip(step.costs, step.trace.ops, strict=True)])
            self.evaluations += 1
        return self._whole[mix]


@dataclass
class StepCosts:
    """Seconds of a serving iteration of `base`'s model on `base`'s hardware: one forward pass.

    With `speculation`, decoding sequences verify `length` draft tokens each in the pass,
    after `length` decode steps of the draft model.
    """

    base: Scenario
    engine: Engine = "analytic"
    speculation: Speculation | None = None
    _passes: list[ForwardPass] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._passes = [ForwardPass(self.base, self.engine)]
        if self.speculation:
            self._passes.append(ForwardPass(self.speculation.draft, self.engine))
        self._dp = self._passes[0].template.par.dp

    @property
    def evaluations(self) -> int:
        """Step estimates made so far (the memo's misses)."""
        return sum(p.evaluations for p in self._passes)

    def iteration(self, decoding: int, context: float, chunks: Iterable[tuple[int, int]]) -> IterationCost:
        """`decoding` sequences, holding `context` cached tokens on average, gain a token each and every
        prompt chunk (new tokens, tokens of its prompt already cached) is prefilled, in one pass."""
        share = chunks if self._dp == 1 else busiest_share(chunks, self._dp)
        pieces: list[tuple[int, int, float]] = [(1, new, cached) for new, cached in share]
        seqs, spec = -(-decoding // self._dp), self.speculation
        total: np.ndarray = np.zeros(3)
        if seqs:
            pieces.append((seqs, spec.length + 1 if spec else 1, context))
            if spec:
                total += spec.length * self._passes[1].cost([(seqs, 1, context)])
        if pieces:
            total += self._passes[0].cost(pieces)
        return IterationCost(*map(float, total))

    def decode(self, batch: int, context: float) -> float:
        """Seconds of an iteration of `batch` decoding sequences holding `context` tokens on average, no prompt."""
        return self.iteration(batch, context, ()).seconds

    def prefill(self, tokens: int) -> float:
        """Seconds of an iteration prefilling one prompt of `tokens` (nothing cached), and no decoding."""
        return self.iteration(0, 0.0, [(tokens, 0)]).seconds


def _per_sequence(base: Scenario) -> tuple[Resolved, Footprint, float]:
    """(resolved, footprint, KV bytes per token per chip) for one sequence per replica."""
    r = one_per_replica(base.model_copy(update={"phase": "decode", "context": 1, "decode_tokens": 1}))
    one = footprint(r)
    return r, one, one.kv_bytes / r.kv_len  # one sequence per replica holding kv_len tokens


def kv_capacity_tokens(base: Scenario, reserve_tokens: int, draft: Scenario | None = None) -> tuple[int, float]:
    """(KV tokens the whole system holds, KV bytes per token per chip) in `base.memory_utilization` of
    each chip's memory, after weights and activations.

    Each replica reserves activations for a prompt chunk of `reserve_tokens`; a speculative `draft`
    model's weights and KV cache share the memory. Raise PerfsimError if nothing is left.
    """
    r, one, per_token = _per_sequence(base)
    weights = one.weights_bytes
    if draft is not None:
        _, draft_one, draft_per_token = _per_sequence(draft)
        weights += draft_one.weights_bytes
        per_token += draft_per_token
    reserve = footprint(replace(r, mix=(Piece(1, reserve_tokens, 0),)))  # a replica may run a whole chunk
    usable = base.memory_utilization * one.capacity_bytes
    free = usable - weights - reserve.activation_bytes
    if free < per_token:
        raise PerfsimError(f"{r.model.name} leaves no memory for the KV cache on {r.chip.name}: weights "
                           f"{weights / 2**30:.2f} GiB of the {usable / 2**30:.2f} GiB per chip a serving engine "
                           f"uses ({base.memory_utilization:.0%}, --memory-utilization)")
    return int(free // per_token) * r.par.dp, per_token

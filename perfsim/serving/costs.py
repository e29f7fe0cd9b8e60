"""Step costs for the serving loop (one forward pass per iteration, its parts memoised exactly), and the KV-cache
capacity left after weights.

An iteration is one forward pass over all its tokens: decode sequences (one new token each over
its cache; k + 1 when verifying k draft tokens) and prompt chunks (ℓ new tokens over the p tokens
of the prompt already cached). The GEMMs see every token once (the weights are read once); each
piece attends on its own, ℓ · (p + (ℓ + 1) / 2) query-key pairs per sequence and head.

The analytic step adds up its ops, and every op belongs to one part of the pass that alone sets its
cost: the head (final norm, LM head: one row per sequence) to the pass's sequences S, a piece's
attention to that piece, and the body (every other op: embedding, norms, GEMMs, experts, collectives,
sends) to the pass's tokens T. The parts are memoised exactly by T, by S and by piece; a pass with any
part not yet known is estimated whole once (`estimate_step` over its pieces), which gives all its parts.
So an analytic pass is exactly (to float rounding) the step estimate over the same pieces, whatever
shape the cost has between two token counts — with GEMMs cut into tiles run in waves it is a staircase
in T, which no interpolation follows. The one approximation is the cached tokens, which round up to a
multiple of 128 (never past the model's max_context): a piece attends over at most 127 more cached
tokens per sequence than it holds. The memo has one entry per distinct T, S and piece a run meets, so
its estimates grow with the shapes of its iterations (token counts up to the iteration budget), not with
its requests.

The DES does not add up: with `engine="des"` a pass is simulated whole, memoised by its pieces of one
shape merged, their sequences and new tokens rounded up to the grid points (every integer up to 16, then
eight per octave: at most 1/8 more).

With dp replicas the busiest one sets the pace: it holds ⌈n / dp⌉ of the n decode sequences, and
the prompt chunks are dealt largest first, each to the replica with the fewest prompt tokens so
far (a sequence's chunk cannot be split across replicas).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from perfsim.cost import OpCost
from perfsim.errors import PerfsimError
from perfsim.frameworks import preset
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

    def __init__(self, scenario: Scenario, engine: Engine, phase: str = "prefill") -> None:
        """`phase` is the step kind a framework preset sees (vLLM replays pure-decode passes as CUDA graphs)."""
        self.template = one_per_replica(scenario.model_copy(update={"phase": phase, "prompt_len": 1,
                                                                    "context": 0 if phase == "prefill" else 1}))
        self.engine = engine
        self.evaluations = 0
        self._body: dict[int, np.ndarray] = {}  # by the pass's tokens T
        self._head: dict[int, np.ndarray] = {}  # by the pass's sequences S
        self._attention: dict[Piece, np.ndarray] = {}
        self._whole: dict[tuple[Piece, ...], np.ndarray] = {}

    def cost(self, pieces: Iterable[tuple[int, int, float]]) -> np.ndarray:
        """One pass over pieces (sequences, new tokens each, cached tokens each)."""
        mix = [Piece(seqs, new, self._cached(cached, new)) for seqs, new, cached in pieces]
        if self.engine == "des":
            return self._simulated(mix)
        tokens, seqs = sum(p.tokens for p in mix), sum(p.seqs for p in mix)
        if tokens not in self._body or seqs not in self._head or any(p not in self._attention for p in mix):
            self._evaluate(mix, tokens, seqs)
        return self._body[tokens] + self._head[seqs] + sum((self._attention[p] for p in mix), np.zeros(3))

    def _cached(self, tokens: float, new: int) -> int:
        """Cached tokens rounded up to a bucket within max_context (never below the exact count)."""
        exact = math.ceil(tokens)
        return min(_round_up(exact, LENGTH_BUCKET), max(exact, self.template.model.max_context - new))

    def _evaluate(self, mix: list[Piece], tokens: int, seqs: int) -> None:
        """Estimate the pass over `mix` (`tokens` in `seqs` sequences) and keep its parts: the body at its tokens,
        the head at its sequences and each piece's attention (a piece k times in the mix runs k equal ops)."""
        step = estimate_step(replace(self.template, mix=tuple(mix)), check_memory=False)
        body, head, attention = np.zeros(3), np.zeros(3), {p: np.zeros(3) for p in mix}
        for c, t in zip(step.costs, step.trace.ops, strict=True):
            totals = _totals(c.time_s * t.repeat, [(c, t.repeat, len(t.chips))])
            if isinstance(t.op, Attention):
                attention[Piece(t.op.batch, t.op.q_len, t.op.kv_len - t.op.q_len)] += totals
            elif t.op.label in HEAD_OPS:
                head += totals
            else:
                body += totals
        body[0] += step.framework_overhead_s  # the framework's per-step host time (and graph launch), once a pass
        self._body.setdefault(tokens, body)
        self._head.setdefault(seqs, head)
        for piece, count in Counter(mix).items():
            self._attention.setdefault(piece, attention[piece] / count)
        self.evaluations += 1

    def _simulated(self, pieces: list[Piece]) -> np.ndarray:
        """The whole pass simulated, pieces of one shape merged, sequences and new tokens rounded up to grid points."""
        merged: Counter[tuple[int, int]] = Counter()
        for piece in pieces:
            merged[grid(piece.new)[1], piece.cached] += piece.seqs
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
        self._decode_pass = self._passes[0]
        if self.base.framework is not None and preset(self.base.framework).graph_phases:
            self._decode_pass = ForwardPass(self.base, self.engine, "decode")  # a pure-decode pass may be a graph
            self._passes.append(self._decode_pass)
        self._draft = ForwardPass(self.speculation.draft, self.engine) if self.speculation else None
        if self._draft is not None:
            self._passes.append(self._draft)
        self._dp = self._passes[0].template.par.dp
        self._decodes: dict[tuple[int, int, int], IterationCost] = {}  # pure-decode passes: (sequences, cached ×2)

    @property
    def evaluations(self) -> int:
        """Step estimates made so far (the memo's misses)."""
        return sum(p.evaluations for p in self._passes)

    def iteration(self, decoding: int, context: float, chunks: Iterable[tuple[int, int]]) -> IterationCost:
        """`decoding` sequences, holding `context` cached tokens on average, gain a token each and every
        prompt chunk (new tokens, tokens of its prompt already cached) is prefilled, in one pass."""
        share = chunks if self._dp == 1 else busiest_share(chunks, self._dp)
        seqs, spec = -(-decoding // self._dp), self.speculation
        if not share and seqs:  # a pure-decode pass: memoised by what its cost depends on (exactly)
            key = (seqs, self._decode_pass._cached(context, spec.length + 1 if spec else 1),
                   self._draft._cached(context, 1) if self._draft is not None else 0)
            found = self._decodes.get(key)
            if found is None:
                found = self._decodes[key] = self._iteration(seqs, context, share)
            return found
        return self._iteration(seqs, context, share)

    def _iteration(self, seqs: int, context: float, share: Iterable[tuple[int, int]]) -> IterationCost:
        pieces: list[tuple[int, int, float]] = [(1, new, cached) for new, cached in share]
        spec = self.speculation
        total: np.ndarray = np.zeros(3)
        if seqs:
            pieces.append((seqs, spec.length + 1 if spec else 1, context))
            if spec and self._draft is not None:
                total += spec.length * self._draft.cost([(seqs, 1, context)])
        if pieces:
            total += (self._passes[0] if share else self._decode_pass).cost(pieces)
        return IterationCost(*map(float, total))

    def decode(self, batch: int, context: float) -> float:
        """Seconds of an iteration of `batch` decoding sequences holding `context` tokens on average, no prompt."""
        return self.iteration(batch, context, ()).seconds

    def prefill(self, tokens: int) -> float:
        """Seconds of an iteration prefilling one prompt of `tokens` (nothing cached), and no decoding."""
        return self.iteration(0, 0.0, [(tokens, 0)]).seconds


def _per_sequence(base: Scenario) -> tuple[Resolved, Footprint, float]:
    """(resolved, footprint, KV bytes per token per chip) for one sequence per replica."""
    r = one_per_replica(base.model_copy(update={"phase": "decode", "context": 1, "decode_tokens": 1,
                                                "memory_utilization": base.memory_utilization}))  # given: 0.9 too
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
    usable = one.capacity_bytes  # memory_utilization of each chip's memory (Resolved.memory_fraction)
    free = usable - weights - reserve.activation_bytes
    if free < per_token:
        raise PerfsimError(f"{r.model.name} leaves no memory for the KV cache on {r.chip.name}: weights "
                           f"{weights / 2**30:.2f} GiB of the {usable / 2**30:.2f} GiB per chip a serving engine "
                           f"uses ({base.memory_utilization:.0%}, --memory-utilization)")
    return int(free // per_token) * r.par.dp, per_token

"""Step costs for the serving loop, memoised by bucket, and the KV-cache capacity left after weights.

Decode steps are keyed by (batch bucket, context bucket), prefill chunks by a token
bucket, so 10,000 requests cost a few hundred step estimates, not one per iteration.
Buckets round up (batch to a multiple of 8 above 8 and of dp, lengths to 128 tokens),
so a bucketed cost is never below the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perfsim.errors import PerfsimError
from perfsim.models.footprint import footprint
from perfsim.models.scenario import Scenario, one_per_replica, resolve
from perfsim.models.step import Engine, estimate_step

LENGTH_BUCKET = 128


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def chunk_shape(tokens: int, dp: int, max_context: int) -> dict[str, int]:
    """A prefill chunk of `tokens` as batch × prompt_len: split over the dp replicas, and into
    prompts no longer than the model's context."""
    per_replica = max(1, -(-tokens // dp))
    prompts = -(-per_replica // max_context)
    return {"batch": dp * prompts, "prompt_len": -(-per_replica // prompts)}


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


@dataclass
class StepCosts:
    """Seconds for a decode step or a prefill chunk of `base`'s model on `base`'s hardware.

    With `speculation`, a decode step is `length` draft decode steps plus one target step
    verifying length + 1 tokens per sequence.
    """

    base: Scenario
    engine: Engine = "analytic"
    speculation: Speculation | None = None
    evaluations: int = 0
    _memo: dict[tuple, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resolved = one_per_replica(self.base)
        self._dp, self._max_context = resolved.par.dp, resolved.model.max_context

    def _batch_bucket(self, batch: int) -> int:
        bucket = batch if batch <= 8 else _round_up(batch, 8)
        return max(_round_up(bucket, self._dp), self._dp)

    def decode(self, batch: int, context: float) -> float:
        """One decode step for `batch` sequences whose KV caches hold `context` tokens on average."""
        key = ("decode", self._batch_bucket(batch), _round_up(max(1, round(context)), LENGTH_BUCKET))
        update = {"phase": "decode", "batch": key[1], "context": key[2]}
        spec = self.speculation
        if spec is None:
            return self._cost(key, update)
        verify = self._cost((*key, "verify"), {**update, "decode_tokens": spec.length + 1})
        draft = self._cost((*key, "draft"), update, spec.draft)
        return verify + spec.length * draft

    def prefill(self, tokens: int) -> float:
        """A prefill step of `tokens` prompt tokens (one chunk; attention within each prompt of the chunk)."""
        key = ("prefill", _round_up(tokens, LENGTH_BUCKET))
        return self._cost(key, {"phase": "prefill", **chunk_shape(key[1], self._dp, self._max_context)})

    def _cost(self, key: tuple, update: dict, base: Scenario | None = None) -> float:
        if key not in self._memo:
            scenario = (base or self.base).model_copy(update={**update, "micro_batches": 1})
            self._memo[key] = estimate_step(scenario, engine=self.engine, check_memory=False).step_s
            self.evaluations += 1
        return self._memo[key]


def _per_sequence(base: Scenario) -> tuple[object, float, float]:
    """(resolved, weights bytes per chip, KV bytes per token per chip) for one sequence per replica."""
    r = one_per_replica(base.model_copy(update={"phase": "decode", "context": 1, "decode_tokens": 1}))
    one = footprint(r)
    return r, one, one.kv_bytes / r.kv_len  # one sequence per replica holding kv_len tokens


def kv_capacity_tokens(base: Scenario, reserve_tokens: int, draft: Scenario | None = None) -> tuple[int, float]:
    """(KV tokens the whole system holds, KV bytes per token per chip) after weights and activations.

    Activations are reserved for a prefill chunk of `reserve_tokens`; a speculative `draft`
    model's weights and KV cache share the memory. Raise PerfsimError if nothing is left.
    """
    r, one, per_token = _per_sequence(base)
    weights = one.weights_bytes
    if draft is not None:
        _, draft_one, draft_per_token = _per_sequence(draft)
        weights += draft_one.weights_bytes
        per_token += draft_per_token
    shape = chunk_shape(reserve_tokens, r.par.dp, r.model.max_context)
    reserve = footprint(resolve(base.model_copy(update={"phase": "prefill", "micro_batches": 1, **shape})))
    free = one.capacity_bytes - weights - reserve.activation_bytes
    if free < per_token:
        raise PerfsimError(f"{r.model.name} leaves no memory for the KV cache on {r.chip.name}: weights "
                           f"{weights / 2**30:.2f} GiB of {one.capacity_bytes / 2**30:.2f} GiB per chip")
    return int(free // per_token) * r.par.dp, per_token

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
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import Engine, estimate_step

LENGTH_BUCKET = 128


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


@dataclass
class StepCosts:
    """Seconds for a decode step or a prefill chunk of `base`'s model on `base`'s hardware."""

    base: Scenario
    engine: Engine = "analytic"
    evaluations: int = 0
    _memo: dict[tuple, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._dp = resolve(self.base.model_copy(update={"batch": self.base.dp or 1})).par.dp

    def _batch_bucket(self, batch: int) -> int:
        bucket = batch if batch <= 8 else _round_up(batch, 8)
        return max(_round_up(bucket, self._dp), self._dp)

    def decode(self, batch: int, context: float) -> float:
        """One decode step for `batch` sequences whose KV caches hold `context` tokens on average."""
        key = ("decode", self._batch_bucket(batch), _round_up(max(1, round(context)), LENGTH_BUCKET))
        return self._cost(key, {"phase": "decode", "batch": key[1], "context": key[2]})

    def prefill(self, tokens: int) -> float:
        """A prefill step of `tokens` prompt tokens (one chunk; attention within the chunk)."""
        key = ("prefill", _round_up(tokens, LENGTH_BUCKET))
        return self._cost(key, {"phase": "prefill", "batch": self._dp, "prompt_len": max(1, key[1] // self._dp)})

    def _cost(self, key: tuple, update: dict) -> float:
        if key not in self._memo:
            scenario = self.base.model_copy(update={**update, "micro_batches": 1})
            self._memo[key] = estimate_step(scenario, engine=self.engine, check_memory=False).step_s
            self.evaluations += 1
        return self._memo[key]


def kv_capacity_tokens(base: Scenario, reserve_tokens: int) -> tuple[int, float]:
    """(KV tokens the whole system holds, KV bytes per token per chip) after weights and activations.

    Activations are reserved for a prefill chunk of `reserve_tokens`. Raise PerfsimError if
    the weights leave no room.
    """
    r = resolve(base.model_copy(update={"phase": "decode", "context": 1, "batch": base.dp or 1,
                                        "micro_batches": 1}))
    one = footprint(r)
    per_token = one.kv_bytes / r.kv_len  # one sequence per replica holding kv_len tokens
    reserve = footprint(resolve(base.model_copy(update={"phase": "prefill", "prompt_len": reserve_tokens,
                                                        "batch": r.par.dp, "micro_batches": 1})))
    free = one.capacity_bytes - one.weights_bytes - reserve.activation_bytes
    if free < per_token:
        raise PerfsimError(f"{r.model.name} leaves no memory for the KV cache on {r.chip.name}: weights "
                           f"{one.weights_bytes / 2**30:.2f} GiB of {one.capacity_bytes / 2**30:.2f} GiB per chip")
    return int(free // per_token) * r.par.dp, per_token

"""KV Prediction (Horton et al., arXiv 2410.08391): time to first token with an auxiliary model.

A small auxiliary model (OpenELM-270M/450M/1.1B, or a layer-pruned base) runs the prompt; per base
layer a learned linear predictor maps the auxiliary model's K and V to the base model's; the base model
then generates the first token from the predicted cache (one decode step over the prompt). So

    predicted TTFT = auxiliary prefill + predictor GEMMs + one base decode step with the prompt cached,

against the base model's own prefill. Base layer i reads auxiliary layer ⌊i · L_aux / L_base⌋ (layers spread
evenly; the paper learns one map per base layer, which is what is costed here whatever the pairing).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfsim.cost import Cache, cost
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Resolved, Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.ops import Gemm


@dataclass(frozen=True)
class KvPredictionTTFT:
    """Seconds to first token: the base model alone, and the parts of KV prediction."""

    base_s: float
    auxiliary_s: float
    predictor_s: float
    first_token_s: float

    @property
    def predicted_s(self) -> float:
        return self.auxiliary_s + self.predictor_s + self.first_token_s

    @property
    def speedup(self) -> float:
        return self.base_s / self.predicted_s


def predictor_ops(base: Resolved, auxiliary: Resolved) -> list[Gemm]:
    """The linear KV predictors: per base layer, one K and one V map from the paired auxiliary layer."""
    b, a = base.model, auxiliary.model
    tokens = base.scenario.batch * base.scenario.prompt_len
    ops = []
    for layer in range(b.layers):
        aux_layer = layer * a.layers // b.layers
        k_in = a.layer_kv_heads(aux_layer) * a.dim_per_head
        k_out = b.layer_kv_heads(layer) * b.dim_per_head
        ops += [Gemm(name=f"kv_predictor_{kv}", m=tokens, k=k_in, n=k_out, dtype=base.scenario.activation_dtype,
                     weight_shared=True) for kv in ("k", "v")]
    return ops


def kv_prediction_ttft(base: Scenario, auxiliary: Scenario, cache: Cache = "cold") -> KvPredictionTTFT:
    """TTFT of `base` (a prefill scenario) alone and with KV prediction from `auxiliary` (a prefill scenario).

    Raise PerfsimError unless both are prefill scenarios of the same prompts (batch, prompt_len) on the same hardware.
    """
    for name, s in (("base", base), ("auxiliary", auxiliary)):
        if s.phase != "prefill":
            raise PerfsimError(f"kv prediction: the {name} scenario must be a prefill (TTFT), got phase {s.phase}")
    same = ("batch", "prompt_len", "hardware", "cores")
    if any(getattr(base, f) != getattr(auxiliary, f) for f in same):
        raise PerfsimError(f"kv prediction: base and auxiliary scenarios must share {', '.join(same)}")
    base_r, aux_r = resolve(base), resolve(auxiliary)
    base_s = estimate_step(base_r, cache).step_s
    auxiliary_s = estimate_step(aux_r, cache).step_s
    predictor_s = sum(cost(op, base_r.system or base_r.chip, cache).time_s for op in predictor_ops(base_r, aux_r))
    first = base.model_copy(update={"phase": "decode", "context": base.prompt_len, "decode_tokens": 1})
    first_token_s = estimate_step(first, cache).step_s
    return KvPredictionTTFT(base_s, auxiliary_s, predictor_s, first_token_s)

"""Per-block parallel layouts and the collectives that move tokens between the blocks (issue 22 item 2).

Attention runs tp-way tensor parallel in dp replicas; routed experts run on ep · expert_tp ranks of the
same G = tp · dp chips; shared experts run shared_tp-way tensor parallel. `exchange` says how tokens move:

- all_to_all (the default): attention's partial outputs are all-reduced over its TP group; each MoE layer
  dispatches every token's top_k copies to the EP ranks holding its experts and combines them back (two
  all-to-alls), then all-reduces over expert_tp; shared experts (and dense FFNs) run tp-way on the
  replica's tokens. shared_tp must equal tp.
- gather (H2P, vllm-ascend's layer for Pangu Pro MoE with dp > 1: "input_layernorm → tp all_gather →
  attn → tp reduce_scatter → post_attention_layernorm → all_rank all_gather → moe/mlp → all_rank
  reduce_scatter", vllm-project/vllm-ascend PR "support H2P communication optimization for PanguProMoE"):
  hidden states sit split over the TP group between layers, so the norms run on ⌈T / tp⌉ tokens; the TP
  group all-gathers them before attention and reduce-scatters attention's output; then all G chips
  all-gather every token of the group, each runs its routed experts (no all-to-all: every chip holds every
  token) and its slice of the shared experts (shared_tp-way, on shared_tp / G of the tokens, so shared_tp
  divides G) — or, in a dense layer, of the FFN — and one reduce-scatter sums the routed, expert-TP and
  shared partial outputs back to ⌈dp·T / G⌉ tokens per chip.

Volumes per layer (T tokens per DP replica, h hidden, b bytes per activation element; nccl-tests sizes:
an all_gather's output buffer, a reduce_scatter's input buffer; a ring rank sends (n − 1)/n of it):
  gather:      tp_all_gather  (tp, T·h·b)   tp_reduce_scatter (tp, T·h·b)
               ffn_all_gather (G, dp·T·h·b) ffn_reduce_scatter (G, dp·T·h·b)
  all_to_all:  tp_all_reduce (tp, T·h·b), ep_dispatch / ep_combine (ep, dp·T·top_k·h·b / (ep·expert_tp)
               × the busiest rank's load), expert_all_reduce (expert_tp, dp·T·h·b / ep)
The paper's 8-NPU layout (arXiv 2505.21411: attention DP2 + TP4, MoE TP2 + EP4, shared experts TP8) is
tp 4, dp 2, ep 4, expert_tp 2, shared_tp 8, exchange gather.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perfsim.dtypes import resolve_format
from perfsim.errors import PerfsimError
from perfsim.ops import Collective

if TYPE_CHECKING:
    from perfsim.models.scenario import Resolved, Scenario


def shared_degree(s: Scenario, tp: int, dp: int) -> int:
    """The tensor-parallel degree of shared experts and dense FFNs: `s.shared_tp` (default tp); Raise
    PerfsimError where the exchange cannot place it (all_to_all: only tp; gather: a divisor of tp · dp)."""
    shared = s.shared_tp or tp
    if s.exchange == "all_to_all" and shared != tp:
        raise PerfsimError(f"shared_tp ({shared}) other than tp ({tp}) needs exchange gather (every chip of the "
                           "MoE group holding every token)")
    if (tp * dp) % shared:
        raise PerfsimError(f"shared_tp ({shared}) must divide tp × dp = {tp * dp}")
    return shared


def gathered(r: Resolved) -> bool:
    """True when the scenario's FFN blocks see every token of the tp · dp group (exchange gather)."""
    return r.scenario.exchange == "gather"


def resident_tokens(r: Resolved) -> int:
    """Tokens one chip holds between blocks: the replica's T, or ⌈T / tp⌉ when gathered (sequence-split)."""
    t = r.tokens_per_replica
    return -(-t // r.par.tp) if gathered(r) else t


def ffn_tokens(r: Resolved, degree: int) -> int:
    """Tokens one chip's slice of a `degree`-way FFN block (shared experts or dense FFN) sees: the replica's T,
    or, gathered, its share dp·T · degree / (tp·dp) of the group's tokens."""
    t, par = r.tokens_per_replica, r.par
    return -(-t * par.dp * degree // (par.tp * par.dp)) if gathered(r) else t


def collective(r: Resolved, name: str, kind: str, elements: float, group: int) -> list[Collective]:
    """A `kind` collective of `elements` activations over `group` chips (none for a group of 1)."""
    if group == 1:
        return []
    size = elements * resolve_format(r.scenario.activation_dtype).bits_per_element / 8
    return [Collective(name=name, kind=kind, size_bytes=size, group=group)]


def before_attention(r: Resolved) -> list[Collective]:
    """Gathered: the TP group all-gathers the replica's T · h hidden states; else nothing."""
    if not gathered(r):
        return []
    return collective(r, "tp_all_gather", "all_gather", r.tokens_per_replica * r.model.hidden, r.par.tp)


def after_attention(r: Resolved) -> list[Collective]:
    """attention's partial outputs summed over the TP group: reduce-scattered (gathered) or all-reduced."""
    kind = "reduce_scatter" if gathered(r) else "all_reduce"
    name = "tp_reduce_scatter" if gathered(r) else "tp_all_reduce"
    return collective(r, name, kind, r.tokens_per_replica * r.model.hidden, r.par.tp)


def around_ffn(r: Resolved) -> tuple[list[Collective], list[Collective]]:
    """Gathered: (all-gather of the group's dp·T tokens, reduce-scatter of the FFN block's partial outputs)
    over all tp · dp chips; else nothing (the block's own collectives move its tokens)."""
    if not gathered(r):
        return [], []
    elements, group = r.tokens_per_replica * r.par.dp * r.model.hidden, r.par.tp * r.par.dp
    return (collective(r, "ffn_all_gather", "all_gather", elements, group),
            collective(r, "ffn_reduce_scatter", "reduce_scatter", elements, group))

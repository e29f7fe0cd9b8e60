"""Pangu Pro MoE's hybrid layout on an Atlas 800I A2 and multi-server Ascend systems, derived by hand.

The paper's layout (arXiv 2505.21411): attention DP2 + TP4, MoE TP2 + EP4, shared experts TP8 on 8 NPUs,
tokens moved by vllm-ascend's H2P exchange (perfsim.models.parallel). Pangu Pro MoE: hidden h = 5120,
48 layers, 64 experts (8 groups, top-8), 4 shared experts of FFN 1344. W8A8: int8 activations, 1 byte.
"""

import pytest

from perfsim.cost import cost
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models import WORKLOAD_DIR
from perfsim.models.footprint import footprint
from perfsim.models.routing import busiest_load
from perfsim.models.scenario import Scenario, resolve
from perfsim.models.step import estimate_step
from perfsim.models.trace import build_trace
from perfsim.ops import Collective

US = 1e-6
H = 5120
PAPER = {"model": "pangu-pro-moe", "hardware": "atlas-800i-a2", "devices": 8, "tp": 4, "dp": 2, "ep": 4,
         "expert_tp": 2, "shared_tp": 8, "exchange": "gather", "batch": 456, "weight_dtype": "int8",
         "activation_dtype": "int8", "kv_dtype": "fp16"}


def _layer_ops(fields: dict) -> dict[str, object]:
    """The first layer's ops by name (every layer of Pangu Pro MoE is the same MoE layer; layer 0, whose attn_norm
    has no residual yet, is traced on its own before the other 47)."""
    trace = build_trace(resolve(Scenario(**fields)))
    return {t.op.name: t for t in trace.ops if t.layer == 0}


def test_the_papers_layout_moves_tokens_with_two_gathers_and_two_scatters_per_layer():
    ops = _layer_ops(PAPER)
    collectives = {name: (t.op.kind, t.op.group, t.op.size_bytes) for name, t in ops.items()
                   if isinstance(t.op, Collective)}
    # batch 456 over DP2: T = 228 tokens per replica. TP group (4 NPUs): all-gather and reduce-scatter T·h·1 B;
    # all 8 NPUs: all-gather and reduce-scatter the group's 2T = 456 tokens, 456·5120 B. No all-to-all and no
    # all-reduce: every NPU holds every token, and one reduce-scatter sums routed, expert-TP and shared partials
    assert collectives == {"tp_all_gather": ("all_gather", 4, 228 * H),
                           "tp_reduce_scatter": ("reduce_scatter", 4, 228 * H),
                           "ffn_all_gather": ("all_gather", 8, 456 * H),
                           "ffn_reduce_scatter": ("reduce_scatter", 8, 456 * H)}


def test_the_papers_layout_splits_each_block_its_own_way():
    ops = _layer_ops(PAPER)
    # norms on the T / tp = 57 tokens an NPU holds between blocks; attention's GEMMs on the replica's 228
    assert ops["attn_norm"].op.rows == ops["ffn_norm"].op.rows == 57
    assert ops["qkv"].op.m == 228
    # routed experts: the group's 456 tokens, 64 / EP4 = 16 experts per NPU, each split TP2
    experts = ops["experts"].op
    assert (experts.tokens, experts.ep, experts.expert_tp) == (456, 4, 2)
    # shared experts TP8: 4 · 1344 = 5376 wide / 8 = 672 per NPU (gate and up: 1344 columns), all 456 tokens
    assert (ops["shared_up"].op.m, ops["shared_up"].op.n, ops["shared_down"].op.k) == (456, 2 * 672, 672)


def test_shared_experts_tp8_hold_half_the_shared_weights_of_tp4():
    # shared experts: 4 · 3 matrices · 5120 · 1344 = 82,575,360 int8 parameters per layer, 48 layers
    shared = 4 * 3 * H * 1344 * 48
    tp4 = footprint(resolve(Scenario(**{**PAPER, "shared_tp": 4}))).weights_bytes
    tp8 = footprint(resolve(Scenario(**PAPER))).weights_bytes
    assert tp4 - tp8 == pytest.approx(shared / 4 - shared / 8)


def test_the_gather_is_priced_over_hccs_by_hand():
    step = estimate_step(Scenario(**PAPER), engine="analytic")
    c = next(c for c, t in zip(step.costs, step.trace.ops, strict=True) if t.op.name == "ffn_all_gather")
    # ring all-gather over 8 NPUs of the HCCS full mesh: 7 links each 28 GB/s × 0.64 (calibrated) = 125.44 GB/s;
    # α = 5 µs. Each NPU sends 7/8 · 2,334,720 B = 2,042,880 B in 7 steps. LL: 6.6 + 7·5 = 41.6 µs + 2,042,880 /
    # (125.44e9 / 2) = 32.57 µs → 74.17 µs; LL128: 14 + 7·6.3 = 58.1 + 17.37 = 75.47 µs; Simple: 8.4 + 7·7.8 =
    # 63.0 + 16.29 = 79.3 µs; the least is LL
    assert c.resource_s == {"link:hccs": pytest.approx(41.6 * US + 2_042_880 / (7 * 28e9 * 0.64 / 2))}
    assert c.detail["protocol"] == "ll"


def test_the_default_exchange_keeps_all_to_all_and_all_reduces():
    ops = _layer_ops({**PAPER, "shared_tp": None, "exchange": "all_to_all"})
    collectives = {name: (t.op.kind, t.op.group, t.op.size_bytes) for name, t in ops.items()
                   if isinstance(t.op, Collective)}
    # dispatch / combine: the busiest EP rank's 456 tokens · top-8 · h / (EP4 · TP2) = 456 · 5120 B (MoGE: max/mean
    # 1); expert all-reduce over TP2 of 456 · h / 4; attention and shared experts all-reduce T · h over TP4
    assert collectives == {"tp_all_reduce": ("all_reduce", 4, 228 * H), "ep_dispatch": ("all_to_all", 4, 456 * H),
                           "ep_combine": ("all_to_all", 4, 456 * H),
                           "expert_all_reduce": ("all_reduce", 2, 456 * H / 4),
                           "shared_all_reduce": ("all_reduce", 4, 228 * H)}


def test_gathered_routing_skew_stretches_the_experts_but_not_the_exchange(tmp_path):
    # plain top-8 of 64 (Pangu without its groups): a Zipf-skewed router loads the busiest EP rank above the
    # mean, which stretches its experts; the gathers and scatters carry every token whatever the routing
    plain = tmp_path / "pangu-pro-moe.yaml"
    plain.write_text((WORKLOAD_DIR / "pangu-pro-moe.yaml").read_text().replace("groups: 8", "groups: 1"))
    uniform = _layer_ops({**PAPER, "model": str(plain)})
    skewed = _layer_ops({**PAPER, "model": str(plain), "routing": "zipf:1.2"})
    imbalance = busiest_load("zipf:1.2", 64, 8, 1, 4, 456)
    assert imbalance > 1
    assert skewed["experts"].op.imbalance == pytest.approx(imbalance)
    for name in ("tp_all_gather", "tp_reduce_scatter", "ffn_all_gather", "ffn_reduce_scatter"):
        assert skewed[name].op == uniform[name].op


@pytest.mark.parametrize(("fields", "needle"), [
    ({"exchange": "all_to_all"}, "shared_tp (8) other than tp (4) needs exchange gather"),
    ({"shared_tp": 3}, "shared_tp (3) must divide tp × dp = 8"),
])
def test_a_layout_that_cannot_place_the_shared_experts_is_one_line(fields, needle):
    with pytest.raises(PerfsimError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        resolve(Scenario(**{**PAPER, **fields}))


def test_four_servers_are_32_npus_over_hccs_then_roce():
    system = load_hardware("atlas-800i-a2-x4")
    assert system.chips == 32
    assert [(link.name, count) for link, count in system.interconnects] == [("hccs", 8), ("roce", 4)]


def test_a_collective_inside_one_server_never_touches_roce():
    c = cost(Collective(kind="all_gather", size_bytes=32e6, group=8), load_hardware("atlas-800i-a2-x4"))
    assert set(c.resource_s) == {"link:hccs"}


def test_a_collective_across_servers_is_priced_over_roce_by_hand():
    # one NPU per server (stride 8): 4 members on RoCE only. Each NPU drives its own 200 Gb/s port: 25 GB/s.
    # Ring all-gather of S = 32 MB: 3 steps, each NPU sends 3/4 · S = 24 MB. On a network a step costs α = 5 µs
    # plus NCCL's NET extra (LL 0, LL128 1.3, Simple 11.3 µs). LL: 6.6 + 15 µs + 24e6 / 12.5e9 = 1941.6 µs;
    # LL128: 14 + 3·6.3 = 32.9 µs + 24e6 / (25e9 · 120/128) = 1056.9 µs; Simple: 8.4 + 3·16.3 = 57.3 µs +
    # 24e6 / 25e9 = 1017.3 µs; the least is Simple
    c = cost(Collective(kind="all_gather", size_bytes=32e6, group=4, stride=8), load_hardware("atlas-800i-a2-x4"))
    assert c.resource_s == {"link:roce": pytest.approx(57.3 * US + 24e6 / 25e9)}
    # all 32 NPUs: the RoCE level carries the 8 NPUs' share of S in 4 members, 3/4 · S / 8 each
    both = cost(Collective(kind="all_gather", size_bytes=32e6, group=32), load_hardware("atlas-800i-a2-x4"))
    assert both.bytes_per_level["roce"] == pytest.approx(3 / 4 * 32e6 / 8)
    assert both.bytes_per_level["hccs"] == pytest.approx(7 / 8 * 32e6)

"""An MoE op on an accelerator as its kernels (perfsim.cost.moe_kernels): launches, routed rows, tiles, weights."""

import pytest

import perfsim.api as ps
from perfsim.cost import cost
from perfsim.cost.derating import rates
from perfsim.cost.moe_kernels import Routing, kernel_costs
from perfsim.ops import MoE

H100 = ps.hardware("h100-sxm")  # 132 SMs, gemm_tiles bf16 128 × 256 × 64
LAUNCH = 2.43e-6  # its op_overhead (CAL-LAUNCH-H100)
# Mixtral-8x7B's MoE layer (hidden 4096, 8 experts of ffn 14336, top-2, SwiGLU) for one decoded token, bf16
MIXTRAL_DECODE = MoE(tokens=1, hidden=4096, expert_ffn=14336, experts=8, top_k=2)


def test_an_moe_op_is_seven_launched_kernels_and_a_shared_expert_adds_three():
    c = cost(MIXTRAL_DECODE, H100)
    # router, topk_softmax, permute, up, activation, down, combine; each launch costs h100-sxm's calibrated
    # 2.43 µs: 7 × 2.43 µs = 17.01 µs
    assert c.detail["kernels"] == "router, topk_softmax, permute, up, activation, down, combine"
    assert c.overhead_s == pytest.approx(7 * LAUNCH) == pytest.approx(17.01e-6)
    shared = cost(MIXTRAL_DECODE.model_copy(update={"shared_experts": 1}), H100)
    assert shared.overhead_s == pytest.approx(10 * LAUNCH)  # + shared up GEMM, activation, down GEMM


def test_the_op_takes_its_kernels_one_after_another_and_reports_the_algorithmic_flops():
    c = cost(MIXTRAL_DECODE, H100)
    kernels = kernel_costs(MIXTRAL_DECODE, H100, rates(H100), "cold")
    assert c.time_s == pytest.approx(sum(k.busiest[1] for k in kernels.values()) + 7 * LAUNCH)
    # FLOPs: routed 2 · 1 token · 2 experts · 3 · 4096 · 14336 + router 2 · 1 · 4096 · 8, not the padded tiles
    assert c.flops == 2 * 2 * 3 * 4096 * 14336 + 2 * 4096 * 8
    assert c.bound == "memory:hbm"  # one token: every kernel streams more than it computes


def test_mixtral_decode_reads_the_two_touched_experts_once_in_whole_16_row_tiles():
    kernels = kernel_costs(MIXTRAL_DECODE, H100, rates(H100), "cold")
    # one token, top-2 of 8: E·(1 − (1 − 2/8)^1) = 2 experts touched, 2 rows, one per expert
    routing = Routing.of(MIXTRAL_DECODE)
    assert (routing.pairs, routing.experts) == (2, 2)
    weights = 2 * 3 * 4096 * 14336 * 2  # 2 experts × 3 matrices × hidden × ffn × 2 B = 704,643,072 B
    # up (w13: N = 2 · 14336): x 2 rows · 4096 · 2 B in, y 2 · 28672 · 2 B out; down: x 2 · 14336 · 2, y 2 · 4096 · 2
    up = weights * 2 / 3 + 2 * 4096 * 2 + 2 * 28672 * 2
    down = weights / 3 + 2 * 14336 * 2 + 2 * 4096 * 2
    assert kernels["up"].bytes_per_level["hbm"] == pytest.approx(up)
    assert kernels["down"].bytes_per_level["hbm"] == pytest.approx(down)
    # the 32-column tiles re-read the 16 KiB activation panel from L2 (whole re-reads), never the weights
    rereads = kernels["up"].bytes_per_level.get("l2", 0.0) / (2 * 4096 * 2)
    assert rereads >= 1 and rereads == int(rereads)
    # grouped up GEMM: one row per expert is padded to one row tile either way; vLLM's 16 × 32 × 64 small-M tile
    # (1 token ≤ 8 experts) beats the spec's 128 × 256: 2 × 28672 / 32 = 1792 tiles, ⌈1792 / 132⌉ = 14 waves of
    # 2 · 16 · 32 · 4096 FLOP against 2 waves of 2 · 128 · 256 · 4096 (7,168 vs 65,536 row·column units per SM)
    rate = rates(H100).compute("matrix", "bf16")[1]
    assert kernels["up"].detail["tile"] == kernels["down"].detail["tile"] == "16x32x64"
    assert kernels["up"].resource_s["compute:bf16"] == pytest.approx(14 * 2 * 16 * 32 * 4096 / (rate / 132))
    # down: 2 × 4096 / 32 = 256 tiles, ⌈256 / 132⌉ = 2 waves of 2 · 16 · 32 · 14336 FLOP
    assert kernels["down"].resource_s["compute:bf16"] == pytest.approx(2 * 2 * 16 * 32 * 14336 / (rate / 132))
    # and the op reads nothing more than those weights, the router's 4096 × 8 × 2 B and the activations
    total = cost(MIXTRAL_DECODE, H100).bytes_per_level["hbm"]
    activations = (4096 * 2 + 8 * 2)  # router: x in, 8 logits out
    activations += 8 * 2 + 2 * (4 + 4)  # top-k: logits in, 2 fp32 weights + 2 int32 ids out
    activations += 4096 * 2 + 2 * 4096 * 2  # permute: 1 row in, 2 rows out
    activations += 2 * 28672 * 2 + 2 * 14336 * 2  # SiLU·mul: 2 rows of gate|up in, 2 rows of ffn out
    activations += 2 * (4096 * 2 + 4) + 4096 * 2  # combine: 2 rows and 2 fp32 weights in, 1 row out
    assert total == pytest.approx(up + down + 4096 * 8 * 2 + activations)


def test_the_busiest_device_computes_imbalance_times_the_mean_rows():
    # 1024 tokens, top-8 of 64, EP8: 1024 · 8 / 8 = 1024 pairs over 8 local experts = 128 rows each; at imbalance
    # 1.5, 1536 pairs, 192 rows each. On vLLM's 64 × 64 × 32 tile (its default for 1024 tokens > 8 local experts),
    # 2 row tiles per expert become 3, the up GEMM's 16 × 48 = 768 tiles (N = 2 · 1536 / 64 = 48) become
    # 24 × 48 = 1152, and its ⌈768 / 132⌉ = 6 waves ⌈1152 / 132⌉ = 9: 1.5 × the compute
    op = MoE(tokens=1024, hidden=4096, expert_ffn=1536, experts=64, top_k=8, ep=8)
    skewed = op.model_copy(update={"imbalance": 1.5})
    assert Routing.of(op).pairs == 1024 and Routing.of(skewed).pairs == 1536
    assert Routing.of(op).row_tiles(64) == 16 and Routing.of(skewed).row_tiles(64) == 24
    from perfsim.cost.moe_kernels import VLLM_TILE, _grouped_on

    chip = rates(H100)
    even, busy = (_grouped_on(o, H100, chip, "cold", Routing.of(o), 4096, 2 * 1536, VLLM_TILE) for o in (op, skewed))
    assert busy.resource_s["compute:bf16"] == pytest.approx(1.5 * even.resource_s["compute:bf16"])
    # whichever tile each picks, the busier chip takes longer
    assert cost(skewed, H100).time_s > cost(op, H100).time_s


def test_rows_spread_over_experts_pad_each_expert_to_whole_tiles():
    # 3 tokens, top-2 of 8: 6 pairs over ⌈8 · (1 − 0.75³)⌉ = ⌈4.625⌉ = 5 experts: one expert gets 2 rows, four get 1;
    # with 16-row tiles that is 5 row tiles (a dense GEMM of the 6 rows would need 1)
    routing = Routing.of(MoE(tokens=3, hidden=64, expert_ffn=64, experts=8, top_k=2))
    assert (routing.pairs, routing.experts) == (6, 5)
    assert routing.row_tiles(16) == 5


def test_the_busiest_chip_reads_every_expert_it_computes_whole():
    # 1 token, top-2 of 64 experts (ffn 1408) over EP8: 2 pairs, E·(1 − (1 − 2/64)) = 2 experts touched of 64, so
    # 2 / 8 = 0.25 per chip on average; the busiest chip computes 1 row on ⌈0.25⌉ = 1 local expert and reads that
    # expert's w13 whole: 4096 × 2 · 1408 × 2 B (not a quarter of it)
    op = MoE(tokens=1, hidden=4096, expert_ffn=1408, experts=64, top_k=2, ep=8)
    assert (Routing.of(op).pairs, Routing.of(op).experts) == (1, 1)
    up = kernel_costs(op, H100, rates(H100), "cold")["up"]
    assert up.bytes_per_level["hbm"] == pytest.approx(4096 * 2 * 1408 * 2 + 4096 * 2 + 2 * 1408 * 2)
    # so EP cannot make a decoded token's MoE layer cheaper than one expert's weights per chip
    one_chip = cost(op.model_copy(update={"ep": 1}), H100).time_s
    assert cost(op, H100).time_s > one_chip / 8


def test_the_grouped_gemm_takes_the_faster_of_vllms_default_config_and_the_specs_tile():
    from perfsim.cost.moe_kernels import VLLM_SMALL_TILE, VLLM_TILE, _grouped_tiles

    bare = H100.model_copy(update={"gemm_tiles": None})
    # vLLM get_default_config: tokens ≤ experts → BLOCK_SIZE_M/N/K 16/32/64, else 64/64/32 (that one first, the
    # other second); h100-sxm adds its bf16 128 × 256 × 64
    assert _grouped_tiles(MIXTRAL_DECODE, bare, rates(bare)) == [VLLM_SMALL_TILE, VLLM_TILE]
    assert (VLLM_SMALL_TILE.m, VLLM_SMALL_TILE.n, VLLM_SMALL_TILE.k) == (16, 32, 64)
    assert _grouped_tiles(MIXTRAL_DECODE, H100, rates(H100)) == [VLLM_SMALL_TILE, VLLM_TILE,
                                                                 H100.gemm_tiles.shapes["bf16"]]
    assert _grouped_tiles(MIXTRAL_DECODE.model_copy(update={"tokens": 64}), bare, rates(bare)) == [VLLM_TILE,
                                                                                                  VLLM_SMALL_TILE]
    assert (VLLM_TILE.m, VLLM_TILE.n, VLLM_TILE.k) == (64, 64, 32)
    # 4096 tokens, top-2 of 8, hidden 4096, ffn 14336: 1024 rows per expert fill both tiles' rows exactly (1024 is
    # a multiple of 64 and 128), so the up GEMM is compute-bound and the spec's bigger tile, fewer re-reads and
    # the same waste-free tiling, is at least as fast: the kernel takes it or ties
    big = MoE(tokens=4096, hidden=4096, expert_ffn=14336, experts=8, top_k=2)
    up = kernel_costs(big, H100, rates(H100), "cold")["up"]
    assert up.time_s <= kernel_costs(big, bare, rates(bare), "cold")["up"].time_s


def test_a_cuda_graph_turns_each_of_the_seven_launches_into_one_graph_node():
    # graph_launched rescales overhead_s = kernels · launch_s by graph_node_s / launch_s: 7 × 1.3 µs = 9.1 µs
    from perfsim.frameworks import GRAPH_NODE_S

    eager = ps.step("mixtral-8x7b", "h100-sxm", phase="decode", batch=1, context=1024, devices=2, tp=2,
                    framework="eager").estimate
    graphed = ps.step("mixtral-8x7b", "h100-sxm", phase="decode", batch=1, context=1024, devices=2, tp=2,
                      framework="cuda-graph").estimate
    moe = next(i for i, t in enumerate(eager.trace.ops) if t.op.kind == "moe")
    assert eager.costs[moe].overhead_s == pytest.approx(7 * LAUNCH)
    assert graphed.costs[moe].overhead_s == pytest.approx(7 * GRAPH_NODE_S) == pytest.approx(9.1e-6)


def test_grouped_top_8_of_64_on_ep8_stays_balanced_and_skewed_plain_top_8_loads_the_busiest_device():
    from perfsim.models.routing import busiest_load

    # MoGE, 8 groups of 8 experts, one group per device: every token sends one pair to each device, imbalance 1,
    # so the busiest device computes the mean 456 · 8 / 8 = 456 pairs; plain top-8 under zipf:1.2 loads it > 1.05×
    # (tests/test_routing.py), so it computes at least ⌈456 · 1.05⌉ = 479 pairs and takes longer
    balanced = MoE(tokens=456, hidden=4096, expert_ffn=1344, experts=64, top_k=8, groups=8, ep=8)
    grouped = balanced.model_copy(update={"imbalance": busiest_load("zipf:1.2", 64, 8, 8, 8, 456)})
    plain = balanced.model_copy(update={"groups": 1})
    skewed = plain.model_copy(update={"imbalance": busiest_load("zipf:1.2", 64, 8, 1, 8, 456)})
    assert Routing.of(grouped).pairs == Routing.of(balanced).pairs == 456
    assert cost(grouped, H100).time_s == cost(balanced, H100).time_s
    assert Routing.of(skewed).pairs >= 479
    assert cost(skewed, H100).time_s > cost(plain, H100).time_s


def test_expert_tp_must_divide_the_expert_ffn():
    # an expert's FFN columns split expert_tp ways: 1024 columns cannot go 3 ways (the op), nor deepseek-moe-16b's
    # 1408 (the scenario: 6 chips in data parallel, experts EP2 × expert-TP3)
    from perfsim.errors import PerfsimError
    from perfsim.models.scenario import Scenario, resolve

    with pytest.raises(ValueError, match=r"expert_tp \(3\) must divide expert_ffn \(1024\)"):
        MoE(tokens=8, hidden=4096, expert_ffn=1024, experts=8, top_k=2, expert_tp=3)
    with pytest.raises(PerfsimError, match=r"expert_tp \(3\) must divide the expert FFN width 1408"):
        resolve(Scenario(model="deepseek-moe-16b", hardware="h100-sxm", devices=6, tp=1, dp=6, ep=2, expert_tp=3,
                         phase="decode", batch=6))


def test_one_chip_reads_the_expected_number_of_experts_whole():
    # 2 tokens, top-2 of 8: E[experts touched] = 8 · (1 − (6/8)²) = 3.5. The grouped up GEMM is priced at 3 and 4
    # whole experts, weighted ½ each, so it reads 3.5 experts' w13 (4096 × 2·14336 bf16) on average, beside the
    # 4 routed rows in (4 × 4096) and out (4 × 2·14336); the rows' re-reads add well under 0.01 %.
    mi300x = ps.hardware("mi300x")
    op = MoE(tokens=2, hidden=4096, expert_ffn=14336, experts=8, top_k=2)
    assert op.experts_touched == pytest.approx(3.5)
    up = kernel_costs(op, mi300x, rates(mi300x), "cold")["up"]
    assert up.bytes == pytest.approx((4 * 4096 + 3.5 * 4096 * 2 * 14336 + 4 * 2 * 14336) * 2, rel=1e-4)
    # under EP the busiest chip reads the ceiling of its share: at EP2 it computes 4 / 2 = 2 of the pairs over
    # ⌈3.5 / 2⌉ = 2 experts
    ep2 = kernel_costs(op.model_copy(update={"ep": 2}), mi300x, rates(mi300x), "cold")["up"]
    assert ep2.bytes == pytest.approx((2 * 4096 + 2 * 4096 * 2 * 14336 + 2 * 2 * 14336) * 2, rel=1e-4)

"""The wafer-mesh (PLMR) cost model: kernels priced by hand on small meshes, region fit, routes, whole-model plans."""

import json

import pytest

import perfsim.models.step as step_module
import perfsim.validation.predict as predict_module
from perfsim.cost import cost as roofline_dispatch
from perfsim.cost.mesh import meshgemm_counts, meshgemv_counts, ring_allreduce_counts
from perfsim.cost.wafer_compare import kernel_pair, step_pair
from perfsim.cost.wafer_mesh import gemm_cost, op_cost, wafer_mesh_cost
from perfsim.cost.wafer_plan import plan_wafer, wafer_step
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models.scenario import Scenario, resolve
from perfsim.ops import Attention, Gemm, Norm, parse_op
from perfsim.validation.case import load_cases
from perfsim.validation.predict import predict

WSE2 = load_hardware("cerebras-wse2")
NS = 1e-9
LLAMA_DECODE = {"model": "llama-3-8b", "phase": "decode", "batch": 1, "context": 2048, "weight_dtype": "fp16",
                "activation_dtype": "fp16"}


def small_mesh(side: int = 4, routes: int = 24):
    """A side×side WSE-2 at 1 GHz: hop 1 cycle, message overhead 5 cycles, 4 B/cycle links, 8 fp16 FLOP/cycle and
    24 B/cycle of SRAM per core, 48 KiB per core."""
    mesh = WSE2.mesh.model_copy(update={"width": side, "height": side, "max_routes_per_core": routes})
    unit = WSE2.compute[0].model_copy(update={"cores": side * side})
    sram = WSE2.memory[0].model_copy(update={"bandwidth": 24e9})
    clock = WSE2.clock.model_copy(update={"peak": 1e9})
    return WSE2.model_copy(update={"mesh": mesh, "compute": [unit], "memory": [sram], "clock": clock})


def gemv(n: int, k: int) -> Gemm:
    return Gemm(m=1, n=n, k=k, dtype="fp16", weight_shared=True)


def test_meshgemv_priced_by_hand_p4():
    # x[8] @ W[8, 8] fp16 on 4×4: each core holds a 2×2 W tile.
    # compute: 2·2·2 = 8 FLOP at 8 FLOP/cycle = 1 ns; SRAM: W 8 B + x 4 B + y and its receive buffer 8 B = 20 B
    # at 24 B/ns = 0.833 ns. K-tree on a column of 4 (test_reference_mesh: 4 rounds, 6 critical-path hops),
    # messages of ⌈8/4⌉ = 2 fp16 = 4 B: latency 6·1 + 4·5 = 26 ns; routing 4 rounds · 4 B / 4 B/ns = 4 ns.
    c = gemm_cost(gemv(8, 8), small_mesh(), region=4, algorithm="meshgemv")
    assert c.counts == meshgemv_counts(4, 8, bytes_per_element=2)
    assert c.resource_s["compute:fp16"] == pytest.approx(1 * NS)
    assert c.resource_s["memory:sram"] == pytest.approx(20 / 24 * NS)
    assert c.resource_s["mesh:latency"] == pytest.approx(26 * NS)
    assert c.resource_s["mesh:routing"] == pytest.approx(4 * NS)
    assert c.time_s == pytest.approx((1 + 26 + 4) * NS)  # phases in sequence: max(compute, sram) + latency + routing
    assert c.bound == "mesh:latency"


def test_ring_allreduce_gemv_by_hand_p4():
    # plain ring on a column of 4: 2·3 = 6 rounds, each waiting for the 3-hop wrap: 18 critical-path hops;
    # chunks of ⌈⌈8/4⌉/4⌉ = 1 element = 2 B. latency 18 + 6·5 = 48 ns; routing 6 · 2 B / 4 B/ns = 3 ns.
    counts = ring_allreduce_counts(4, 8, bytes_per_element=2)
    assert (counts.rounds, counts.critical_path_hops, counts.messages, counts.max_hops_per_message) == (6, 18, 96, 3)
    c = gemm_cost(gemv(8, 8), small_mesh(), region=4, algorithm="ring")
    assert c.time_s == pytest.approx((1 + 48 + 3) * NS)
    assert c.time_s > gemm_cost(gemv(8, 8), small_mesh(), region=4, algorithm="meshgemv").time_s


def test_meshgemm_and_summa_priced_by_hand_p3():
    # 3×3 @ 3×3 fp16 on 3×3: 1×1 tiles of 2 B. compute: 3 steps × 2 FLOP = 6 FLOP = 0.75 ns; SRAM: 3 steps ×
    # (A 2 + B 2 + C read and write 4) = 24 B = 1 ns. MeshGEMM (test_reference_mesh: 2 rounds, 4 critical hops):
    # latency 4 + 2·5 = 14 ns, routing 2 · 2 B / 4 = 1 ns → 16 ns. SUMMA: 3 rounds, ⌊(27 − 6)/4⌋ = 5 critical
    # hops: latency 5 + 15 = 20 ns, routing 3 · 2 / 4 = 1.5 ns → 22.5 ns.
    op = Gemm(m=3, n=3, k=3, dtype="fp16", weight_shared=True)
    mesh = gemm_cost(op, small_mesh(3), region=3, algorithm="meshgemm")
    summa = gemm_cost(op, small_mesh(3), region=3, algorithm="summa")
    assert mesh.counts.critical_path_hops == meshgemm_counts(3, 3, 3, 3).critical_path_hops == 4
    assert mesh.resource_s["compute:fp16"] == pytest.approx(0.75 * NS)
    assert mesh.time_s == pytest.approx(16 * NS)
    assert summa.time_s == pytest.approx(22.5 * NS)


def test_plain_ring_cannon_waits_for_the_wrap():
    # P = 4: interleaved shifts ≤ 2 hops (3 rounds × 2 = 6 critical hops); the plain ring's wrap is 3 hops (9)
    op = Gemm(m=4, n=4, k=4, dtype="fp16", weight_shared=True)
    mesh = gemm_cost(op, small_mesh(), region=4, algorithm="meshgemm")
    ring = gemm_cost(op, small_mesh(), region=4, algorithm="cannon_ring")
    assert ring.resource_s["mesh:latency"] - mesh.resource_s["mesh:latency"] == pytest.approx((9 - 6) * NS)


def test_fp8_weights_travel_at_their_width():
    # Cannon's byte counts scale with a + b: fp16 A tile 2 B + fp8 B tile 1 B = 3 B over the two 1-element tiles
    op = Gemm(m=3, n=3, k=3, dtype="fp16", weight_dtype="fp8_e4m3", weight_shared=True)
    c = gemm_cost(op, small_mesh(3), region=3, algorithm="meshgemm")
    assert c.counts.message_bytes == pytest.approx(meshgemm_counts(3, 3, 3, 3, bytes_per_element=1).message_bytes * 1.5)


def test_tiles_that_do_not_fit_name_the_smallest_region():
    # x[32768] @ W fp16 by MeshGEMV: a core holds t×t W (2t² B), x (2t B) and y twice (4t B), t = ⌈32768/P⌉.
    # 2t² + 6t ≤ 49152 B needs t ≤ 155: P = 212 (t = 155); P = 211 gives t = 156, 49,608 B.
    op = gemv(32768, 32768)
    with pytest.raises(PerfsimError, match="the smallest region that fits is 212×212"):
        gemm_cost(op, WSE2, region=211, algorithm="meshgemv")
    assert gemm_cost(op, WSE2, region=212, algorithm="meshgemv").region == 212
    with pytest.raises(PerfsimError, match="does not fit cerebras-wse2's 757×996 mesh"):
        gemm_cost(op, WSE2, region=800)


def test_route_budget_limits_the_algorithm():
    with pytest.raises(PerfsimError, match=r"meshgemv needs 4 routes per core; .* hold 3"):
        gemm_cost(gemv(8, 8), small_mesh(routes=3), region=4, algorithm="meshgemv")
    assert gemm_cost(gemv(8, 8), small_mesh(routes=3), region=4, algorithm="ring").algorithm == "ring"
    with pytest.raises(PerfsimError, match="unknown mesh algorithm 'cannon'"):
        gemm_cost(gemv(8, 8), small_mesh(), region=4, algorithm="cannon")


def test_searched_region_is_the_fastest():
    op = gemv(4096, 4096)
    best = gemm_cost(op, WSE2, algorithm="meshgemv")
    for p in (best.region - 40, best.region + 40):
        assert gemm_cost(op, WSE2, region=p, algorithm="meshgemv").time_s >= best.time_s
    assert wafer_mesh_cost(op, WSE2).time_s == op_cost(op, WSE2).time_s <= best.time_s


def test_auto_picks_gemv_for_one_row_and_cannon_for_many():
    assert op_cost(gemv(4096, 4096), WSE2, region=256).algorithm == "meshgemv"
    assert op_cost(Gemm(m=4096, n=4096, k=4096, dtype="fp16", weight_shared=True), WSE2, region=256).algorithm \
        == "meshgemm"


def test_norm_all_reduces_one_scalar_per_row():
    # rmsnorm of 4096 fp16 values on 4×4: 4 FLOP × 4096 / 16 cores = 1024 FLOP = 128 ns; one 2-byte partial sum
    # per core goes through the K-tree (4 rounds, 6 hops): latency 26 ns, routing 4 · 2 / 4 = 2 ns.
    c = op_cost(Norm(rows=1, cols=4096, dtype="fp16"), small_mesh(), region=4)
    assert c.resource_s["compute:fp16"] == pytest.approx(128 * NS)
    assert c.time_s == pytest.approx((128 + 26 + 2) * NS)


def test_decode_attention_is_two_gemvs_and_a_softmax():
    op = Attention(heads=32, kv_heads=8, head_dim=128, q_len=1, kv_len=2048, dtype="fp16")
    c = op_cost(op, WSE2, region=420)
    assert c.algorithm == "meshgemv+meshgemv+meshgemv"
    assert c.flops == op.flops


def test_unsupported_ops_and_kinds():
    with pytest.raises(PerfsimError, match="does not price moe ops"):
        op_cost(parse_op("moe tokens=4 hidden=64 expert_ffn=64 experts=8 top_k=2"), WSE2)


def test_llama_plan_on_420_regions_by_hand():
    # 757×996 holds 1 × 2 regions of 420 × 420: 16 layers each. Per layer a core holds W tiles of qkv 10×15,
    # o_proj 10×10, ffn_up 10×69, ffn_down 35×10 = 1,290 fp16 = 2,580 B; × 16 = 41,280 B. Buffers: ffn_up's x (10)
    # and y twice (2·69) fp16 = 296 B. KV per token per core: 16 layers × K and V × ⌈1024/420⌉ = 3 × 2 B = 192 B.
    # Free: 49,152 − 41,280 − 296 = 7,576 B = 39 tokens a core. Shift: 420 columns × 39 = 16,380 tokens;
    # concatenation: a 2,048-token prompt spread (⌈2048/420⌉ = 5 a column), the tail column takes 34 more.
    plan = plan_wafer(resolve(Scenario(**LLAMA_DECODE, prompt_len=2048, hardware="cerebras-wse2")), region=420)
    assert (plan.regions, plan.layers_per_region) == (2, 16)
    assert (plan.weight_bytes, plan.buffer_bytes, plan.kv_token_bytes) == (41280, 296, 192)
    assert plan.max_tokens("shift") == 16380
    assert plan.max_tokens("concat") == 2048 + 34


def test_plan_errors_name_what_does_not_fit():
    r = resolve(Scenario(**LLAMA_DECODE, hardware="cerebras-wse2"))
    # 540: ⌊757/540⌋·⌊996/540⌋ = 1·1 region, which must hold all 32 layers (twice the 16 of the 420 case)
    with pytest.raises(PerfsimError, match=r"its 757×996 mesh holds 1×1 of them, so 1 region\(s\) hold 32 layer\(s\) "
                                           r"each and a core needs .* of its 48 KiB; region sizes that fit: .*–498, "):
        plan_wafer(r, region=540)
    # 498 = 996 / 2 is the largest P with 1·2 regions (16 layers each; tiles no larger than at 420, which fits);
    # at 499 the mesh holds 1·1 and the one region stacks all 32 layers again
    assert plan_wafer(r, region=498).regions == 2
    with pytest.raises(PerfsimError, match="holds 1×1 of them, so 1 region"):
        plan_wafer(r, region=499)
    # a 512-token prompt decoded to 2,049 tokens: concatenation holds 512 + (39 − ⌈512/420⌉) = 549
    decoded = resolve(Scenario(**LLAMA_DECODE, prompt_len=512, hardware="cerebras-wse2"))
    with pytest.raises(PerfsimError, match="2049 tokens exceed the 549 the concat KV placement holds"):
        plan_wafer(decoded, region=420, kv_policy="concat")
    assert plan_wafer(decoded, region=420, kv_policy="shift").max_tokens() == 16380


def test_decode_step_is_mesh_bound_and_shift_costs_a_round():
    shift = wafer_step(Scenario(**LLAMA_DECODE, hardware="cerebras-wse2"), region=420)
    concat = wafer_step(Scenario(**LLAMA_DECODE, prompt_len=2048, hardware="cerebras-wse2"), region=420,
                        kv_policy="concat")
    assert shift.bound in ("mesh:latency", "mesh:routing")
    # the shift adds one 1-hop round per layer's attention: (1 + 5) cycles + 192/16 B per layer / 4 B per cycle
    per_layer = (1 + 5 + 192 / 16 / 4) / 1.1e9
    assert shift.step_s - concat.step_s == pytest.approx(32 * per_layer)
    assert shift.step_s == pytest.approx(sum(c.time_s * t.repeat for c, t in zip(shift.costs, shift.trace.ops,
                                                                                  strict=True)))


def test_prefill_is_compute_bound():
    step = wafer_step(Scenario(**{**LLAMA_DECODE, "phase": "prefill", "prompt_len": 512, "context": 0},
                               hardware="cerebras-wse2"), region=420)
    assert step.bound == "compute:fp16"


def test_speedups_are_ratios_of_two_predictions():
    pair = kernel_pair(gemv(32768, 32768))
    assert pair.gpu.time_s == roofline_dispatch(gemv(32768, 32768), load_hardware("a100-sxm-80gb")).time_s
    assert pair.speedup == pair.gpu.time_s / pair.wafer.time_s > 100
    steps = step_pair(LLAMA_DECODE, region=420)
    assert steps.speedup == steps.gpu.step_s / steps.wafer.step_s > 10


def _wired(monkeypatch):
    """Dispatch wafer meshes as the integrator will: ops to wafer_mesh_cost, steps to plan_wafer."""
    original_step = step_module.estimate_step

    def dispatch(op, hardware, cache="cold"):
        return wafer_mesh_cost(op, hardware, cache) if hardware.kind == "wafer_mesh" else roofline_dispatch(
            op, hardware, cache)

    def estimate(scenario, cache="cold", hardware=None, engine="analytic", check_memory=True):
        r = scenario if not isinstance(scenario, Scenario) else resolve(scenario, hardware)
        if r.chip.kind == "wafer_mesh" and r.system is None:
            return wafer_step(r)
        return original_step(r, cache, hardware, engine, check_memory)

    monkeypatch.setattr(step_module, "estimate_step", estimate)
    monkeypatch.setattr(predict_module, "estimate_step", estimate)
    monkeypatch.setattr(predict_module, "cost", dispatch)


def test_cli_decode_on_the_wafer_is_mesh_bound(cli, monkeypatch):
    _wired(monkeypatch)
    result = cli("estimate", "--model", "llama-3-8b", "--hardware", "cerebras-wse2", "--phase", "decode", "--batch",
                 "1", "--context", "2048", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["bound"] in ("mesh:latency", "mesh:routing")


def test_wafer_cases_are_scored_once_wired(monkeypatch):
    _wired(monkeypatch)
    cases = {c.id: c for c in load_cases() if c.id.startswith("WAF-")}
    for case in cases.values():
        value = predict(case).value
        assert 0.1 < value / case.published < 10, case.id


def test_fitting_region_sizes_are_shown_as_runs():
    from perfsim.cost.wafer_plan import _spans

    assert _spans([98, 99, 100, 190, 191, 300]) == "98–100, 190–191, 300"


def test_hardware_list_shows_the_whole_wafer():
    from perfsim import api

    row = next(row for row in api.hardware_list() if row["name"] == "cerebras-wse2")
    # 48 KiB and 26.4 GB/s per PE (24 B × 1.1 GHz), 757 × 996 = 753,972 PEs: 34.51 GiB and 19.9 PB/s in all
    assert row["memory_bytes"] == 48 * 1024 * 757 * 996
    assert row["memory_bandwidth_bytes_per_s"] == pytest.approx(26.4e9 * 757 * 996)

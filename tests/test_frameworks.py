"""Framework presets: per-step host overhead and CUDA-graph launches in the step estimate (perfsim.frameworks)."""

from __future__ import annotations

import re

import pytest

from perfsim.cost import cost
from perfsim.cost.derating import launch_s
from perfsim.errors import PerfsimError
from perfsim.frameworks import GRAPH_LAUNCH_S, GRAPH_NODE_S, PRESETS, preset
from perfsim.hardware import load_hardware
from perfsim.models.scenario import Scenario
from perfsim.models.step import estimate_step
from perfsim.ops import Gemm

# OpenELM-270M, one sequence decoding over 512 cached tokens on one H100: 16 layers × 10 ops (attn_norm, qkv,
# rope, kv_append, attention, o_proj, ffn_norm, ffn_up, ffn_act, ffn_down) + embedding, final_norm, lm_head
# = 163 ops, one kernel each, except that batch-1 attention over 512 keys splits the KV over the idle SMs and adds a
# combine kernel (at a 2.43 µs launch the split pays for its second launch): 179 kernels.
KERNELS = 16 * 11 + 3
LAUNCH = 2.43e-6  # h100-sxm's op_overhead (CAL-LAUNCH-H100: 65,536 B per kernel at 27 GB/s on its sibling H200)
WEIGHTS_S = 271_527_168 * 2 / (3.35e12 * 0.8866)  # bf16 weights over the calibrated HBM triad: ≈ 183 µs


def step(framework: str | None):
    return estimate_step(Scenario(model="openelm-270m", hardware="h100-sxm", batch=1, context=512,
                                  framework=framework))


def test_batch1_decode_is_launch_bound_eager_and_less_so_as_a_cuda_graph():
    plain = step(None)
    # eager: 179 launches · 2.43 µs = 435 µs of launches against ≈ 183 µs of weight streaming: launch-bound
    assert launch_s(load_hardware("h100-sxm")) == LAUNCH
    assert sum(c.overhead_s for c in plain.costs) == pytest.approx(KERNELS * LAUNCH)
    assert KERNELS * LAUNCH > 2 * WEIGHTS_S
    assert plain.bound == "overhead"
    assert step("eager").step_s == plain.step_s  # eager adds nothing beyond the launches already costed
    # captured: each launch becomes a 1.3 µs graph node, plus one 15 µs graph launch per step:
    # step = plain − 179 · (2.43 − 1.3) µs + 15 µs (the ops run one after another, each time = busiest + overhead)
    graph = step("cuda-graph")
    assert graph.step_s == pytest.approx(plain.step_s - KERNELS * (LAUNCH - GRAPH_NODE_S) + GRAPH_LAUNCH_S)
    # 179 · 1.3 µs = 233 µs of nodes is now about the ≥ 183 µs of weight streaming, and each op binds where its
    # own time goes: the ops whose HBM traffic outlasts their 1.3 µs nodes but not their 2.43 µs launches flip to
    # HBM-bound (the split attention has two of each)
    assert KERNELS * GRAPH_NODE_S > WEIGHTS_S
    def hbm_bound(result):
        return {i for i, c in enumerate(result.costs) if c.bound == "memory:hbm"}
    flips = {i for i, (c, node) in enumerate(zip(plain.costs, graph.costs, strict=True))
             if node.overhead_s < c.resource_s.get("memory:hbm", 0.0) <= c.overhead_s}
    assert flips and hbm_bound(graph) == hbm_bound(plain) | flips
    summary = graph.summary()
    assert (summary["framework"], summary["framework_overhead_s"]) == ("cuda-graph", GRAPH_LAUNCH_S)
    assert summary["tpot_s"] == graph.step_s


def test_vllm_adds_its_host_gap_to_a_graph_captured_decode_step():
    # vLLM V0 single-step: decode captured as a graph (as above) + 4 ms of CPU work per step (vllm#6854)
    vllm, graph = step("vllm"), step("cuda-graph")
    assert vllm.framework_overhead_s == pytest.approx(4e-3 + GRAPH_LAUNCH_S)
    assert vllm.step_s == pytest.approx(graph.step_s + 4e-3)
    assert vllm.bound == "framework"  # 4 ms of host work against ≈ 0.45 ms of GPU work


def test_vllm_prefill_is_not_graph_captured():
    # vLLM captures decode only: a prefill keeps its launches and pays the 4 ms host gap alone
    def prefill(framework):
        return estimate_step(Scenario(model="openelm-270m", hardware="h100-sxm", phase="prefill", prompt_len=128,
                                      framework=framework))

    plain, vllm = prefill(None), prefill("vllm")
    assert [c.overhead_s for c in vllm.costs] == [c.overhead_s for c in plain.costs]
    assert vllm.step_s == pytest.approx(plain.step_s + 4e-3)


def test_an_unknown_preset_is_a_one_line_error_naming_the_presets(cli):
    with pytest.raises(PerfsimError, match=re.escape("framework: unknown preset 'sglang'; presets: eager, "
                                                     "cuda-graph, vllm, tensorrt-llm, mindie, llama.cpp")):
        step("sglang")
    result = cli("estimate", "--model", "openelm-270m", "--hardware", "h100-sxm", "--context", "512",
                 "--framework", "sglang")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("perfsim: error: framework: unknown preset 'sglang'")


def test_every_preset_is_named_in_the_flag_help_and_cites_a_source():
    help_text = Scenario.model_fields["framework"].description
    for name, framework in PRESETS.items():
        assert name in help_text
        assert preset(name) is framework and len(framework.source) > 40


@pytest.mark.parametrize("chip", ["h100-sxm", "a100-sxm-80gb"])
def test_64_cubed_gemm_is_launch_bound_at_the_chip_launch(chip):
    # 2·64³ = 0.52 MFLOP and 3 · 64·64·2 B = 24 KiB: well under a microsecond on these chips, so the
    # kernel costs its launch (the spec's op_overhead, else the 5 µs default) plus that, and is launch-bound.
    device = load_hardware(chip)
    c = cost(Gemm(m=64, n=64, k=64, dtype="bf16"), device)
    assert c.overhead_s == launch_s(device)
    assert c.bound == "overhead"
    assert launch_s(device) <= c.time_s < 2 * launch_s(device)


def test_64_cubed_gemm_on_mi300x_is_one_short_tile_under_its_launch():
    # MI300X's bf16 tile is 256×256×64; for at most 256 rows its 64-row cut competes, and the whole 64³ GEMM is one
    # 64×256×64 tile on one CU: 2·64·256·64 FLOP at 1307.4 TFLOP/s × 1207/2100 MHz × 0.9422 / 304 CUs =
    # 2.3290 TFLOP/s is 0.9005 µs (the 256-row tile: 3.6018 µs), under its 1.88 µs launch (CAL-LAUNCH-MI300X), so
    # the kernel is launch-bound and pays both
    device = load_hardware("mi300x")
    c = cost(Gemm(m=64, n=64, k=64, dtype="bf16"), device)
    tile_s = 2 * 64 * 256 * 64 / (1307.4e12 * 1207 / 2100 * 0.9422 / 304)
    assert c.overhead_s == launch_s(device) == pytest.approx(1.88e-6)
    assert c.bound == "overhead"
    assert c.time_s == pytest.approx(tile_s + 1.88e-6, rel=1e-9)


def test_the_des_engine_adds_the_same_framework_seconds():
    # one chip, one micro-batch: the simulated makespan is the ops in a chain, so both engines agree
    for framework in (None, "cuda-graph", "vllm"):
        scenario = Scenario(model="openelm-270m", hardware="h100-sxm", batch=1, context=512, framework=framework)
        assert estimate_step(scenario, engine="des").step_s == pytest.approx(estimate_step(scenario).step_s)


def test_graph_capture_applies_to_accelerator_kernels_only():
    # a CPU has no kernel launches to capture: llama.cpp's decode graph (and its graph launch) and its 0 s host time
    # change nothing
    def cpu(framework):
        return estimate_step(Scenario(model="openelm-270m", hardware="m2-pro-cpu", batch=1, context=512,
                                      framework=framework))

    plain, llama = cpu(None), cpu("llama.cpp")
    assert [c.overhead_s for c in llama.costs] == [c.overhead_s for c in plain.costs]
    assert llama.step_s == plain.step_s


def test_serving_pays_the_framework_time_once_per_iteration():
    # a pass's seconds = the step estimate of its pieces, whose step_s includes the preset's per-step host time
    from perfsim.models.scenario import Scenario
    from perfsim.models.step import estimate_step
    from perfsim.serving.costs import StepCosts

    base = Scenario(model="llama-2-7b", hardware="a100-sxm-80gb", framework="vllm")
    exact = estimate_step(base.model_copy(update={"phase": "decode", "batch": 4, "context": 1024}), check_memory=False)
    assert StepCosts(base).decode(4, 1024.0) == pytest.approx(exact.step_s, rel=1e-9)
    # vLLM and cuda-graph both replay a decode pass as a graph (same node costs, same 15 µs graph launch); vLLM adds
    # its 4 ms of host time per step
    graph = StepCosts(base.model_copy(update={"framework": "cuda-graph"})).decode(4, 1024.0)
    assert StepCosts(base).decode(4, 1024.0) - graph == pytest.approx(4e-3, rel=1e-9)


def test_tensorrt_llm_writes_the_kv_cache_inside_its_rope_kernel():
    # TensorRT-LLM's QKV preprocessing applies RoPE and writes K and V into the cache in one kernel: against no
    # preset (vLLM's separate rotary_embedding and reshape_and_cache_flash kernels) Llama-3-8B decode saves one
    # launch a layer, 32 · 2.43 µs = 77.8 µs, and nothing else (no host time, no graph: the preset adds neither)
    def llama(framework, model="llama-3-8b"):
        return estimate_step(Scenario(model=model, hardware="h100-sxm", batch=1, context=512, framework=framework))

    plain, fused = llama(None), llama("tensorrt-llm")
    assert fused.step_s == pytest.approx(plain.step_s - 32 * LAUNCH, rel=1e-12)
    kv = [c for c in fused.costs if c.op == "kv_append"]
    assert kv and all(c.overhead_s == 0 and c.bytes > 0 for c in kv)  # it still moves its bytes
    # MPT (ALiBi) has no rope kernel for the append to join: it keeps its launch
    assert llama("tensorrt-llm", "mpt-7b").step_s == pytest.approx(llama(None, "mpt-7b").step_s, rel=1e-12)

"""Offloaded MoE serving (perfsim.offload, MoE-Lens): the bound by hand, Eq. 2, host capacity, the simulation
against the bound, the placement block and its errors."""

import json

import pytest

import perfsim as ps
from perfsim.errors import PerfsimError
from perfsim.models.scenario import Scenario
from perfsim.offload.bound import bound_of, capacity, offloaded, saturation_tokens
from perfsim.offload.iteration import iteration

P = 3 * 4096 * 14336  # one Mixtral-8x7B expert: gate, up and down, hidden 4096 × FFN 14336 = 176,160,768 params


def mixtral(hardware="host-8380x2-a40", **fields):
    return Scenario(model="mixtral-8x7b", hardware=hardware, offload="moe-lens", **fields)


def test_bound_by_hand():
    """Mixtral-8x7B decode, 1024 sequences of 511 cached tokens (kv_len 512), on 2 × Xeon 8380 + A40, bf16.

    Link, host → GPU, per layer: 8 experts × P × 2 B + router 4096 × 8 × 2 B = 2,818,572,288 + 65,536
    = 2,818,637,824 B of weights, + the CPU attention's outputs 1024 × 32 heads × 128 × 2 B = 8,388,608 B;
    × 32 layers = 90,464,845,824 B at 32 GB/s = 2.827026432 s (GPU → host carries less: queries 8,388,608 + new
    keys and values 2 × 1024 × 8 × 128 × 2 = 4,194,304 B a layer).
    GPU, per layer: qkv 2·1024·4096·6144 = 51,539,607,552; rope 3 × 1024 × (32 + 8) × 128 = 15,728,640 (the KV
    append runs in host DRAM, where the cache lives); o_proj 2·1024·4096·4096 = 34,359,738,368; two rmsnorms with
    the fused residual add 2 × (4 + 1) × 1024 × 4096 = 41,943,040; experts 2·1024·2·P = 721,554,505,728 + router
    2·1024·4096·8 = 67,108,864: 807,578,632,192 FLOP × 32 = 25,842,516,230,144, less 1024 × 4096 = 4,194,304 as
    layer 0's attn_norm has no residual to add yet; + final norm 5 × 1024 × 4096 = 20,971,520 + lm_head
    2·1024·4096·32000 = 268,435,456,000: 26,110,968,463,360 FLOP at 149.7 TFLOP/s = 0.174422 s.
    Host DRAM, per layer: the streamed weights 2,818,637,824 + the attention's q 8,388,608, K and V 2 × 1024 × 8 ×
    512 × 128 × 2 = 2,147,483,648, o 8,388,608, the new keys and values written 4,194,304 = 4,987,092,992 B;
    × 32 = 159,586,975,744 B at 2 × 204.8 GB/s = 0.389616 s.
    The link binds: 1024 tokens / 2.827026432 s = 362.22 tokens/s.
    """
    r, offload, host = offloaded(mixtral(batch=1024, context=511))
    b = bound_of(iteration(r, offload), host)
    assert b.seconds["link:pcie4"] == pytest.approx(90_464_845_824 / 32e9, rel=1e-12)
    assert b.seconds["compute:bf16"] == pytest.approx(26_110_968_463_360 / 149.7e12, rel=1e-12)
    assert b.seconds["memory:ddr4"] == pytest.approx(159_586_975_744 / 409.6e9, rel=1e-12)
    assert b.bound == "link:pcie4"
    assert b.tokens_per_s == pytest.approx(1024 / 2.827026432, rel=1e-9)


def test_the_cpu_ceiling_is_the_cpu_models_sustained_rate():
    """2 × Xeon 8380: 40 cores × 64 fp32 FLOP/cycle (2 AVX-512 FMA) at 3.4 GHz = 8.704 TFLOP/s a socket at the
    single-core turbo; no calibration.sustained_clock, so the CPU model's all-core default 0.75 × 3.4 GHz = 2.55 GHz:
    6.528 TFLOP/s a socket, 13.056 TFLOP/s the pair (the old peak-based figure: 17.408). The bound's CPU time of the
    decode above is its attention FLOPs at that rate, and the estimate says the rate is a default."""
    r, offload, host = offloaded(mixtral(batch=1024, context=511))
    assert host.cpu_flops == pytest.approx(2 * 40 * 64 * 3.4e9 * 0.75, rel=1e-12)
    it = iteration(r, offload)
    assert bound_of(it, host).seconds["compute:fp32"] == pytest.approx(it.cpu_flops / 13.056e12, rel=1e-12)
    notes = ps.offloaded("mixtral-8x7b", "host-8380x2-a40", batch=4, context=511, simulate=False).notes
    assert any(line.startswith("xeon-8380 is uncalibrated") and "0.75" in line for line in notes)


def test_saturation_tokens_are_eq2():
    """Eq. 2: n = (C / B) · expert bytes / expert FLOPs per token. Mixtral on the A40: 149.7e12 / 32e9 = 4678.125
    FLOP/B; bytes 8·P·2 + 4096·8·2 (router); FLOPs per token 2·2·P + 2·4096·8 → 4678.125 × 3.99972 = 18,711.2,
    i.e. (C / B)·(N_e / N_k) = 4678.125 × 4 = 18,712.5 but for the router. L40 and A100 scale with their peaks."""
    by_hand = 149.7e12 / 32e9 * (8 * P * 2 + 4096 * 8 * 2) / (2 * 2 * P + 2 * 4096 * 8)
    r, offload, host = offloaded(mixtral(batch=2, context=512))
    assert saturation_tokens(iteration(r, offload), host) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(18_712.5, rel=1e-3)
    for hardware, peak in (("host-8380x2-l40", 181.05e12), ("host-8380x2-a100", 312e12)):
        r, offload, host = offloaded(mixtral(hardware, batch=2, context=512))
        assert saturation_tokens(iteration(r, offload), host) == pytest.approx(by_hand * peak / 149.7e12, rel=1e-12)


def test_shared_experts_lower_the_saturating_tokens():
    """DeepSeekMoE-16B: 64 routed (top-6) + 2 shared experts of Pe = 3·2048·1408, router 2048 × 64. Every token
    uses the shared experts (one FFN of width 2 × 1408, its SiLU-gate 5 FLOP per element), so
    n = (C/B) · (66·Pe·2 + 2048·64·2) / (2·(6 + 2)·Pe + 2·2048·64 + 5·2816) < (C/B)·64/6."""
    pe = 3 * 2048 * 1408
    by_hand = 149.7e12 / 32e9 * (66 * pe * 2 + 2048 * 64 * 2) / (2 * 8 * pe + 2 * 2048 * 64 + 5 * 2816)
    r, offload, host = offloaded(Scenario(model="deepseek-moe-16b", hardware="host-8380x2-a40", offload="moe-lens",
                                          batch=2, context=512))
    assert saturation_tokens(iteration(r, offload), host) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand < 149.7e12 / 32e9 * 64 / 6


def test_host_capacity_caps_the_batch():
    """Free host DRAM: 0.9 × 2 × 256 GiB − the experts and routers, 32 × 2,818,637,824 B = 494,780,232,499.2 −
    90,196,410,368 = 404,583,822,131.2 B; a sequence of 512 tokens holds 512 × 32 layers × 2 × 8 × 128 × 2 B =
    67,108,864 B: 6,028 sequences."""
    r, offload, host = offloaded(mixtral(batch=2, context=511))
    cap = capacity(r, offload, host, r.kv_len)
    assert cap.free_bytes == pytest.approx(0.9 * 2 * 256 * 2**30 - 32 * 2_818_637_824, rel=1e-12)
    assert cap.kv_bytes_per_sequence == 67_108_864
    assert (cap.sequences, cap.resource) == (6028, "capacity:ddr4")


def test_simulation_stays_under_the_bound_and_meets_it_when_the_link_binds():
    """A link-bound decode: the weights stream back to back (two buffers), so the simulated iteration is within a
    few % of the link's time; it can never beat the bound."""
    result = ps.offloaded("mixtral-8x7b", "host-8380x2-a40", batch=1024, context=511)
    s = result.summary
    assert s["simulated_tokens_per_s"] <= s["bound_tokens_per_s"]
    assert s["simulated_over_bound"] > 0.95
    assert s["simulated_bound"] == s["bound"] == "link:pcie4"


@pytest.mark.parametrize(("fields", "bound", "peak"), [
    # 1024 decode tokens < 18,711 (Eq. 2): the link binds; the 6,028 sequences that fit still leave it binding,
    # so host memory capacity caps the throughput over every batch
    ({"phase": "decode", "batch": 1024, "context": 511}, "link:pcie4", "capacity:ddr4"),
    # 64 prompts of 512 = 32,768 tokens > 18,711: the GPU binds
    ({"phase": "prefill", "batch": 64, "prompt_len": 512}, "compute:bf16", "compute:bf16"),
])
def test_estimate_names_the_binding_resource(cli, tmp_path, fields, bound, peak):
    path = tmp_path / "offloaded.yaml"
    lines = ["model: mixtral-8x7b", "hardware: host-8380x2-a40", "offload: moe-lens",
             *(f"{k}: {v}" for k, v in fields.items())]
    path.write_text("\n".join(lines) + "\n")
    result = cli("estimate", "--scenario", str(path), "--format", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert (summary["bound"], summary["peak_bound"]) == (bound, peak)
    assert summary["simulated_tokens_per_s"] <= summary["bound_tokens_per_s"]
    table = cli("estimate", "--scenario", str(path))
    assert bound in table.out and "simulated_tokens_per_s" in table.out


def test_a_batch_whose_kv_cache_overflows_the_host_names_capacity(cli):
    result = cli("estimate", "--model", "mixtral-8x7b", "--hardware", "host-8380x2-a40", "--offload", "moe-lens",
                 "--batch", "7000", "--context", "511")
    assert result.code == 2
    assert "at most 6028 sequences" in result.err and "capacity:ddr4" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(("argv", "message"), [
    (["--hardware", "a40", "--offload", "moe-lens"], "offload needs a system spec with a host"),
    (["--hardware", "host-8380x2-a40", "--offload", "moe-lens", "--devices", "2"], "has 1 chips"),
])
def test_bad_offload_input_is_one_line(cli, argv, message):
    result = cli("estimate", "--model", "mixtral-8x7b", *argv)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_placement_block_is_checked(tmp_path):
    with pytest.raises(PerfsimError, match="attention: cpu reads the KV cache from host DRAM"):
        ps.offloaded("mixtral-8x7b", "host-8380x2-a40", offload={"kv": "gpu"})
    with pytest.raises(PerfsimError, match="offload"):
        ps.estimate({"model": "mixtral-8x7b", "offload": "everything"}, "host-8380x2-a40")


def test_a_host_link_must_be_a_link_of_the_chip(tmp_path):
    from perfsim.hardware import SPEC_DIR

    spec = tmp_path / "bad-host.yaml"
    spec.write_text((SPEC_DIR / "host-8380x2-a40.yaml").read_text().replace("host_link: pcie4", "host_link: nvlink")
                    .replace("member: a40", f"member: {SPEC_DIR / 'a40.yaml'}")
                    .replace("host: xeon-8380", f"host: {SPEC_DIR / 'xeon-8380.yaml'}"))
    with pytest.raises(PerfsimError, match="host_link 'nvlink' is not a link of a40"):
        ps.hardware(str(spec))


def test_gpu_resident_experts_stream_nothing():
    """experts: gpu, dense: gpu keeps every weight on the GPU: the link carries only attention traffic."""
    r, offload, _ = offloaded(Scenario(model="deepseek-moe-16b", hardware="host-8380x2-a40", batch=64, context=511,
                                       offload={"experts": "gpu"}))
    it = iteration(r, offload)
    assert it.total("streamed_bytes") == 0
    # 64 sequences: queries + new keys and values GPU → host, 64 × (16 + 2·16) × 128 × 2 B per layer × 28 layers
    assert it.link_bytes == 28 * 64 * 48 * 128 * 2


def test_one_weight_buffer_serialises_streaming_and_compute():
    """With one buffer, layer l's weights cannot cross before the GPU has finished layer l − 1: the iteration is
    at least the link's time for every layer plus every GPU op's time (from the GPU's cost model), one after the
    other; with two buffers the transfers run back to back and the iteration stays within 3 % of the link's time."""
    from perfsim.cost import cost
    from perfsim.offload.simulate import simulate_iteration

    scenario = Scenario(model="deepseek-moe-16b", hardware="host-8380x2-a40", batch=512, context=511,
                        offload={"weight_buffers": 1, "groups": 1})
    r, offload, host = offloaded(scenario)
    it = iteration(r, offload)
    link_s = it.total("streamed_bytes") / 32e9
    gpu_s = sum(cost(op, r.chip).time_s * layer.repeat for layer in it.layers for op in layer.gpu_ops)
    one = simulate_iteration(r, offload, host)
    assert one.iteration_s >= link_s + gpu_s
    two = simulate_iteration(r, offload.model_copy(update={"weight_buffers": 2}), host)
    assert two.iteration_s < one.iteration_s
    assert two.iteration_s == pytest.approx(bound_of(it, host).iteration_s, rel=0.03)


@pytest.mark.parametrize(("fields", "placement", "crossing", "appended"), [
    # decode, CPU attention over a host cache: per layer 4 tokens' keys and values, 2 × 4 × 8 × 128 × 2 B = 16,384,
    # cross beside the queries 4 × 32 × 128 × 2 = 32,768 B and are written into host DRAM
    ({"batch": 4, "context": 511}, {}, 32_768 + 16_384, 16_384),
    # an fp8 cache: 1 B an element, 8,192 B of keys and values a layer
    ({"batch": 4, "context": 511, "kv_dtype": "fp8_e4m3"}, {}, 32_768 + 8_192, 8_192),
    # prefill of 4 × 16 tokens: attention on the GPU, the cache still on the host: 2 × 64 × 8 × 128 × 2 = 262,144 B
    # cross and land, nothing else
    ({"phase": "prefill", "batch": 4, "prompt_len": 16}, {}, 262_144, 262_144),
    # the cache and attention on the GPU: it appends there; nothing crosses GPU → host or lands in host DRAM
    ({"batch": 4, "context": 511}, {"kv": "gpu", "attention": "gpu"}, 0, 0),
])
def test_the_kv_append_runs_where_the_cache_lives(fields, placement, crossing, appended):
    """Mixtral-8x7B (32 layers, 8 KV heads of 128, bf16): the GPU runs the kv_append kernel only where it holds the
    cache; with a host cache the new keys and values cross GPU → host and are written there, once per layer."""
    scenario = Scenario(model="mixtral-8x7b", hardware="host-8380x2-a40", offload=placement or "moe-lens", **fields)
    r, offload, _ = offloaded(scenario)
    it = iteration(r, offload)
    on_gpu = [op.label for layer in it.layers for op in layer.gpu_ops]
    assert ("kv_append" in on_gpu) == (offload.kv == "gpu")
    assert "kv_append" not in [op.label for layer in it.layers for op in layer.cpu]
    assert it.total("d2h_bytes") == 32 * crossing
    assert it.total("kv_write_bytes") == 32 * appended

"""Training steps: backward ops, optimizer bytes, ZeRO traffic, pipeline bubbles, memory, MFU/HFU, DP overlap.

Every expected number is derived by hand in the comment beside it (or by the numpy reference, see
perfsim/reference/backward.py and test_reference_backward below)."""

import math

import pytest

from perfsim.cost import cost
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models.loader import load_model
from perfsim.models.params import layer_params
from perfsim.ops import Attention, Collective, Gemm, MoE, Norm
from perfsim.training.backward import AttentionGrad, backward_ops
from perfsim.training.comm import ring_bytes_sent, zero3_bytes_per_micro_batch
from perfsim.training.config import TrainConfig
from perfsim.training.layout import layout
from perfsim.training.memory import layer_activation_elements, training_memory
from perfsim.training.optimizer import OptimizerStep, bytes_per_parameter, update_traffic_per_parameter
from perfsim.training.schedule import Layer, device_order, overlapped, pipeline
from perfsim.training.step import estimate_training


def test_gemm_backward_flops_and_bytes():
    # forward C[4096, 1024] = A[4096, 512] · B[512, 1024] in bf16: 2·4096·1024·512 = 4,294,967,296 FLOP;
    # dgrad dA = dC·Bᵀ reads dC (4096·1024·2 B = 8 MiB) and B (512·1024·2 = 1 MiB), writes dA (4096·512·2 = 4 MiB);
    # wgrad dB = Aᵀ·dC reads A (4 MiB) and dC (8 MiB), writes dB (1 MiB): each 13 MiB, the forward's traffic.
    op = Gemm(m=4096, n=1024, k=512, dtype="bf16", weight_shared=True)
    dgrad, wgrad = backward_ops(op)
    assert (dgrad.m, dgrad.n, dgrad.k) == (4096, 512, 1024)
    assert (wgrad.m, wgrad.n, wgrad.k) == (512, 1024, 4096)
    assert dgrad.flops == wgrad.flops == 4_294_967_296
    assert dgrad.bytes == wgrad.bytes == 13 * 2**20


def test_attention_backward_counts():
    # causal, 2048 queries over 2048 keys, 32 heads: pairs = 32 · 2048 · 2049 / 2 = 67,141,632;
    # 5 matmuls of 2·128 FLOP per pair = 85,941,288,960; vector: 5 per pair + 2·128 per query row (32·2048 rows)
    op = Attention(heads=32, kv_heads=8, head_dim=128, q_len=2048, kv_len=2048)
    (grad,) = backward_ops(op)
    assert isinstance(grad, AttentionGrad)
    assert grad.matmul_flops == 5 * 2 * 128 * 67_141_632
    assert grad.vector_flops == 5 * 67_141_632 + 2 * 128 * 32 * 2048
    # reads Q (32·2048·128·2 = 16 MiB), K, V (8 heads: 4 MiB each), O and dO (16 MiB each), L (32·2048·4 = 256 KiB);
    # writes dQ (16 MiB), dK, dV (4 MiB each)
    assert grad.bytes == (16 + 4 + 4 + 16 + 16 + 16 + 4 + 4) * 2**20 + 256 * 2**10


def test_moe_and_norm_backward():
    moe = MoE(tokens=64, hidden=256, expert_ffn=512, experts=8, top_k=2)
    dgrad, wgrad = backward_ops(moe)
    assert dgrad.flops == wgrad.flops == moe.flops and dgrad.bytes == moe.bytes
    (norm,) = backward_ops(Norm(rows=10, cols=100))
    assert norm.flops == 9 * 1000  # rmsnorm: 9 FLOP per element (perfsim.training.backward.NORM_GRAD_FLOPS)
    assert norm.bytes == 3 * 1000 * 2  # reads x and dy, writes dx, bf16


def test_adam_bytes_per_parameter():
    # bf16 weight 2 + bf16 grad 2 + fp32 master 4 + m 4 + v 4 = 16 B kept (ZeRO's 2Ψ + 2Ψ + 12Ψ)
    assert bytes_per_parameter("adamw").total == 16
    assert bytes_per_parameter("adamw").optimizer == 12
    # update reads grad 2, master 4, m 4, v 4 and writes master 4, m 4, v 4, bf16 weight 2 = 28 B
    assert update_traffic_per_parameter("adamw") == 28
    assert update_traffic_per_parameter("sgd") == 12  # grad 2 + master 4 read, master 4 + weight 2 written
    assert OptimizerStep(params=1000, optimizer="adamw").flops == 16_000


def test_zero3_communication_volume_per_step():
    # Ψ = 1e9 parameters, 8 ranks, bf16: each micro-batch all-gathers 2 GB twice and reduce-scatters 2 GB once;
    # on a ring each sends 7/8 of the buffer per collective: 3 · 7/8 · 2e9 = 5.25e9 B, 1.5× DDP's all-reduce
    # (2 · 7/8 · 2e9 = 3.5e9 B); 4 micro-batches of gradient accumulation send 4× that: 2.1e10 B per step.
    per_micro_batch = zero3_bytes_per_micro_batch(1e9, 8)
    assert per_micro_batch == pytest.approx(5.25e9)
    assert per_micro_batch / ring_bytes_sent("all_reduce", 2e9, 8) == pytest.approx(1.5)
    assert 4 * per_micro_batch == pytest.approx(2.1e10)


def test_1f1b_bubble_from_the_des():
    # 4 equal stages, t_f = 1 s, t_b = 2 s, 8 micro-batches, free sends: (m + p − 1)(t_f + t_b) = 11 · 3 = 33 s,
    # of which the bubble is (p − 1)/(m + p − 1) = 3/11
    run = pipeline([1.0] * 4, [2.0] * 4, 0.0, 8)
    assert run.makespan_s == pytest.approx(33.0)
    assert 1 - 8 * 3.0 / run.makespan_s == pytest.approx(3 / 11)
    # interleaved with 2 chunks per device: the bubble shrinks to (p − 1)/v chunk-slots: (8 + 3/2) · 3 = 28.5 s
    assert pipeline([1.0] * 4, [2.0] * 4, 0.0, 8, virtual=2).makespan_s == pytest.approx(28.5)
    # device 0 warms up with p − 1 = 3 forwards, then alternates
    assert [k for k, _, _ in device_order(4, 0, 8, 1)][:6] == ["F", "F", "F", "F", "B", "F"]
    with pytest.raises(PerfsimError, match="multiple of pp"):
        pipeline([1.0] * 4, [2.0] * 4, 0.0, 6, virtual=2)


def test_dp_all_reduce_bucketed_and_overlapped():
    # 6 layers of 1 s backward; a 0.5 s bucket after layers 2, 4 and 6: the first two hide under the next
    # layers, the last is exposed: span 6.5 s
    layers = [Layer(f"l{i}", 1.0, bucket_s=0.5 if i % 2 else 0.0) for i in range(6)]
    run = overlapped(layers)
    assert run.span_s == pytest.approx(6.5) and run.exposed_s == pytest.approx(0.5)


def test_dp_overlap_in_a_step_exposes_only_the_last_bucket():
    e = estimate_training(TrainConfig(model="llama-3-8b", hardware="h100-cluster", devices=16, micro_batch=1,
                                      global_batch=16, seq_len=1024, zero=1))
    overlap = e.dp_overlap[0]
    timeline = overlap.schedule.timeline()
    buckets = timeline[timeline.stream == "comm"]
    # each layer's gradients (218,112,000 params · 2 B) exceed a 25 MB bucket: one bucket per layer, 32 layers,
    # the head and the embedding: 34 buckets, each (but the last) under the next layer's backward
    assert len(buckets) == 34
    compute = timeline[timeline.stream == "compute"]
    # the last bucket waits for the last layer (and the buckets still queued on the comm stream): at least its
    # whole duration is left after the compute
    last = buckets.loc[buckets.end_s.idxmax()]
    tail = buckets.end_s.max() - compute.end_s.max()
    assert tail >= last.end_s - last.start_s
    # the other buckets run beside the layers, stretching them (their channels' SMs, their HBM traffic): the
    # exposed time is the tail plus that stretch, still less than the buckets' time
    stretch = compute.end_s.max() - overlap.compute_s
    assert stretch > 0
    assert overlap.exposed_s == pytest.approx(tail + stretch)
    assert overlap.exposed_s < buckets.end_s.sub(buckets.start_s).sum()


def test_memory_with_optimizer_states_and_the_fit_check():
    model = load_model("llama-3-8b")
    # llama-3-8b per token per layer, tp 1: norms 4·4096 + q, k, v, o (2·32 + 2·8)·128 + gated FFN 3·14336
    lay = layout(model, 8, 1, 1, None, 1, 1, 1, 8, 1)
    assert layer_activation_elements(model, lay, 0) == 4 * 4096 + 80 * 128 + 3 * 14336
    params = sum(layer_params(model, i).total for i in range(32)) + 128256 * 4096 * 2 + 4096  # + embed, head, norm
    memory = training_memory(model, lay, load_hardware("h100-sxm"), 2048, "adamw", recompute=False)
    # ZeRO-1 over 8: weights 2Ψ, gradients 2Ψ, optimizer 12Ψ/8
    assert memory.params_bytes == pytest.approx(2 * params)
    assert memory.grads_bytes == pytest.approx(2 * params)
    assert memory.optimizer_bytes == pytest.approx(12 * params / 8)
    # activations: 32 layers × 2048 tokens × 69,632 elements × 2 B, plus logits 2048 × 128,256 × (2 + 4) B
    assert memory.activation_bytes == pytest.approx(32 * 2048 * 69_632 * 2 + 2048 * 128_256 * 6)
    with pytest.raises(PerfsimError, match=r"does not fit on h100-sxm .*optimizer"):
        estimate_training(TrainConfig(model="llama-3-70b", hardware="h100-sxm"))


def test_full_recompute_keeps_layer_inputs_only():
    model = load_model("llama-3-8b")
    lay = layout(model, 8, 1, 1, None, 1, 1, 1, 8, 1)
    memory = training_memory(model, lay, load_hardware("h100-sxm"), 2048, "adamw", recompute=True)
    # 32 layer inputs of 2048 × 4096 × 2 B, plus one layer's full set during its backward, plus the logits
    assert memory.activation_bytes == pytest.approx(32 * 2048 * 4096 * 2 + 2048 * 69_632 * 2 + 2048 * 128_256 * 6)


def test_mfu_and_hfu_with_recompute():
    config = dict(model="llama-3-8b", hardware="h100-cluster", devices=8, micro_batch=1, global_batch=8,
                  seq_len=2048, zero=1)
    plain = estimate_training(TrainConfig(**config))
    full = estimate_training(TrainConfig(**config, recompute="full"))
    model = load_model("llama-3-8b")
    # model FLOPs per sequence of 2048 tokens, matmuls only: 3 passes × 2 FLOP × matmul params × tokens
    # (6,979,321,856 params in the layers' and head's matrices) + attention: forward 4·d per query-key pair,
    # backward 10·d: 14 · 128 · 32 heads · 32 layers · 2048·2049/2 pairs; norms and activations add < 1 %
    matmul = sum(layer_params(model, i).total - 2 * 4096 for i in range(32)) + 128256 * 4096
    expected = 8 * (6 * matmul * 2048 + 14 * 128 * 32 * 32 * 2048 * 2049 / 2)
    assert plain.step_flops(("forward", "backward")) == pytest.approx(expected, rel=0.01)
    peak = 989.4e12  # H100 SXM bf16 dense, datasheet
    assert plain.mfu == pytest.approx(plain.step_flops(("forward", "backward")) / (plain.step_s * 8 * peak))
    assert plain.hfu == plain.mfu
    # full recompute adds one forward of the layers: 2·matmul_layers·T + 4·128·32·32·pairs per sequence
    layers = matmul - 128256 * 4096
    recomputed = 8 * (2 * layers * 2048 + 4 * 128 * 32 * 32 * 2048 * 2049 / 2)
    assert full.hfu / full.mfu == pytest.approx(1 + recomputed / expected, rel=0.01)
    assert full.step_s > plain.step_s


def test_outputs_time_to_train_and_bound():
    e = estimate_training(TrainConfig(model="zaya1-base", hardware="mi300x-cluster", devices=16, micro_batch=2,
                                      global_batch=64, seq_len=4096, zero=1, tokens=1e12))
    s = e.summary()
    assert s["tokens_per_step"] == 64 * 4096 and s["micro_batches"] == 2  # 64 / (16 × 2)
    assert s["tokens_per_s"] == pytest.approx(64 * 4096 / s["step_s"])
    assert s["time_to_train_s"] == pytest.approx(1e12 / s["tokens_per_s"])
    assert set(s["memory"]) == {"params_bytes", "grads_bytes", "optimizer_bytes", "activation_bytes",
                                "total_bytes", "capacity_bytes"}
    assert s["bound"].split(":")[0] in ("compute", "memory", "link", "overhead", "pipeline_bubble", "dp_sync",
                                        "optimizer")
    assert s["step_s"] == pytest.approx(e.sync_end_s + e.optimizer_s + e.param_gather_s)


def test_expert_parallel_all_to_alls_and_expert_gradients():
    e = estimate_training(TrainConfig(model="zaya1-base", hardware="mi300x-cluster", devices=16, ep=8,
                                      micro_batch=1, global_batch=16, seq_len=2048, zero=1))
    names = {name for segment in e.stages[0].segments for _, name, _ in segment.rows}
    assert {"ep_dispatch", "ep_combine", "ep_dispatch.grad", "ep_combine.grad"} <= names
    assert e.layout.expert_dp == 2  # 16 replicas / ep 8: each expert shard is all-reduced over 2 replicas
    with pytest.raises(PerfsimError, match=r"ep .* must divide dp"):
        estimate_training(TrainConfig(model="zaya1-base", hardware="mi300x-cluster", devices=16, ep=3))


def test_zero3_overlap_and_bad_layouts():
    base = dict(model="llama-3-8b", hardware="h100-cluster", devices=8, micro_batch=1, global_batch=16,
                seq_len=1024)
    zero3 = estimate_training(TrainConfig(**base, zero=3))
    # FSDP's gathers run under compute: a micro-batch takes at least its compute, at most compute + all comm
    assert zero3.dp_overlap == [] and zero3.memory.params_bytes < estimate_training(
        TrainConfig(**base, zero=1)).memory.params_bytes
    with pytest.raises(PerfsimError, match="global batch"):
        estimate_training(TrainConfig(**{**base, "global_batch": 12}))
    with pytest.raises(PerfsimError, match="fp8"):
        estimate_training(TrainConfig(**{**base, "hardware": "a100-sxm-80gb"}, precision="fp8"))
    with pytest.raises(PerfsimError, match=r"tp .* pp"):
        estimate_training(TrainConfig(**base, tp=3))


def test_fp8_gemms_run_on_fp8_units():
    e = estimate_training(TrainConfig(model="llama-3-8b", hardware="h100-cluster", devices=8, micro_batch=1,
                                      global_batch=8, seq_len=2048, zero=1, precision="fp8"))
    bounds = {row["bound"] for row in e.breakdown() if row["op"] == "ffn_up"}
    assert bounds <= {"compute:fp8_e4m3", "memory:hbm"}
    assert e.peak_flops == pytest.approx(1978.9e12)


def test_pipeline_step_uses_the_des():
    e = estimate_training(TrainConfig(model="llama-3-8b", hardware="h100-cluster", devices=16, pp=4,
                                      micro_batch=1, global_batch=16, seq_len=1024, zero=1))
    assert e.layout.micro_batches == 4 and e.pipeline_run is not None
    times = e.time_s()
    assert times["pipeline_bubble"] > 0
    # stage 0 (embedding + 8 layers) is the slowest; the DES makespan is at least (m + p − 1) × its slot... and at
    # most the sum of all stages' work per micro-batch plus (m − 1) × the slowest
    per_mb = [w.forward_s + w.backward_s for w in e.stages]
    assert e.pipeline_s >= 4 * max(per_mb)
    assert e.pipeline_s <= sum(per_mb) + 3 * max(per_mb) + 2 * 4 * 2 * e.stages[1].send.time_s


def test_cnn_training_on_one_mcu_matches_the_network_step():
    from perfsim.ops_network import NetworkStep
    from perfsim.training.network import estimate_network_training

    one = estimate_network_training(TrainConfig(model="resnet8", hardware="pulp-open", global_batch=1))
    chip = load_hardware("pulp-open")
    assert one.step_s == pytest.approx(cost(NetworkStep(network="resnet8", step="train"), chip).time_s)
    four = estimate_network_training(TrainConfig(model="resnet8", hardware="pulp-open", global_batch=4))
    updates = sum(c.time_s for _, c in four.updates)
    # four samples' forward and backward, one SGD update
    assert four.step_s == pytest.approx(4 * (one.step_s - updates) + updates)


def test_collective_sizes_follow_the_dp_group():
    from perfsim.training.comm import collective_s
    from perfsim.training.layout import StageParams

    model = load_model("llama-3-8b")
    lay = layout(model, 16, 2, 1, None, 1, 0, 1, 8, 1)
    system = load_hardware("h100-cluster")
    expected = cost(Collective(kind="all_reduce", size_bytes=2e9, group=8, stride=2), system).time_s
    assert collective_s("all_reduce", StageParams(1e9, 0.0), lay, system) == pytest.approx(expected)
    assert math.isclose(collective_s("all_reduce", StageParams(1e9, 0.0), layout(model, 2, 2, 1, None, 1, 0, 1, 1,
                                                                                   1), system), 0.0)


def test_zero3_prefetch_timeline():
    # 4 layers of 1 s backward, each with a 0.6 s all-gather before and a 0.3 s reduce-scatter after, prefetch 2;
    # the next gather goes out before a layer's reduce-scatter (FSDP's order): g0 0–0.6, g1 0.6–1.2, c0 0.6–1.6,
    # g2 1.6–2.2 (waits for c0), rs0 2.2–2.5, c1 1.6–2.6, g3 2.6–3.2, rs1 3.2–3.5, c2 2.6–3.6, rs2 3.6–3.9,
    # c3 3.6–4.6, rs3 4.6–4.9: exposed = the first gather + the last reduce-scatter
    run = overlapped([Layer(f"l{i}", 1.0, gather_s=0.6, reduce_s=0.3) for i in range(4)])
    assert run.span_s == pytest.approx(4.9) and run.exposed_s == pytest.approx(0.9)
    timeline = run.schedule.timeline().set_index("op")
    assert timeline.loc["l2.all_gather", "start_s"] == pytest.approx(1.6)
    assert timeline.loc["l0.reduce_scatter", "start_s"] == pytest.approx(2.2)

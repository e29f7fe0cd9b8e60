"""A collective beside compute: NCCL's and RCCL's channels (SMs, CUs) and HBM traffic slow the overlapped layer."""

import pytest

from perfsim.cost.opcost import OpCost
from perfsim.hardware import load_hardware
from perfsim.training.config import TrainConfig
from perfsim.training.interference import Interference, collective_channels, rccl_channels, ring_channels, slowed_s
from perfsim.training.schedule import Layer, overlapped
from perfsim.training.step import estimate_training


def test_ring_channels_follow_nccls_search():
    # DGX H100: 18 NVLinks × 20.6 GB/s = 370.8; speed 60 admits 6 rings (360, the largest n·s: 50 → 7 = 350,
    # 40 → 9 = 360, 30 → 12 = 360 are not larger); duplicated (60 ≥ 50) to 12, doubled by connect.cc to 24
    assert ring_channels(90, 18 * 20.6) == 24
    # DGX A100: 12 × 20.0 = 240; speed 40 → 6 rings; cc 80 is not > 80, so duplicated to 12; doubled to 24
    assert ring_channels(80, 12 * 20.0) == 24
    # DGX H100 nodes with 8 NICs of 50 GB/s: 48 → min(⌊370.8/48⌋ = 7, 8) = 7 (336), 45 → 8 (360, kept);
    # 45 < 50 and 8 > 4: not duplicated; doubled to 16
    assert ring_channels(90, 18 * 20.6, nics=8, nic_gbps=50.0) == 16
    h100 = load_hardware("h100-sxm")
    assert collective_channels(h100, load_hardware("dgx-h100"), crosses_nodes=False) == 24
    assert collective_channels(h100, load_hardware("h100-cluster"), crosses_nodes=True) == 16


def test_rccl_channels_follow_its_mi300x_topology_models():
    # one node: RCCL's rome_model_79 lays 28 rings; 28 ≤ 128/2 is duplicated to 56, and init.cc's nc = 2 copies
    # min(128 // 28, 2) · 28 = 56: 56 channels
    assert rccl_channels(28, 304, crosses_nodes=False) == 56
    # 8 NICs per node: rome_model_81's 64 rings, capped at 64 across nodes; 64 > 32 is not duplicated and
    # min(64 // 64, 2) · 64 = 64
    assert rccl_channels(64, 304, crosses_nodes=True) == 64
    # 16 NICs per node: rome_model_84's 16 rings, duplicated to 32, nc: min(64 // 16, 2) · 16 = 32
    assert rccl_channels(16, 304, crosses_nodes=True) == 32
    # a gfx94x part of 80 CUs caps the channels at its CUs: 28 → 2 · 28 = 56 ≤ 80, nc: min(80 // 28, 2) · 28 = 56;
    # 64 rings: 64 > 40 not duplicated, min(80 // 64, 2) · 64 = 64
    assert rccl_channels(28, 80, crosses_nodes=False) == 56
    assert rccl_channels(64, 80, crosses_nodes=False) == 64
    mi300x = load_hardware("mi300x")
    assert collective_channels(mi300x, load_hardware("mi300x-node"), crosses_nodes=False) == 56
    assert collective_channels(mi300x, load_hardware("mi300x-cluster"), crosses_nodes=False) == 56
    assert collective_channels(mi300x, load_hardware("mi300x-cluster"), crosses_nodes=True) == 64
    # no model for a node that is not RCCL's 8-GPU one: no CUs taken
    assert collective_channels(mi300x, None, crosses_nodes=False) == 0


def test_compute_beside_an_mi300x_all_reduce_runs_on_the_cus_left():
    mi300x = load_hardware("mi300x")  # 304 CUs, 5.3 TB/s HBM
    channels = collective_channels(mi300x, load_hardware("mi300x-node"), crosses_nodes=False)
    # a one-node all-reduce sending 1 GB in 10 ms touches HBM 3 × 1e9 / 0.01 = 300 GB/s, taking 56 CUs
    hit = Interference.of("all_reduce", 1e9, 10e-3, channels)
    assert (hit.sms, hit.hbm_bytes_per_s) == (56, pytest.approx(3e11))
    # a compute-bound op (1 s of matrix work, 0.5 s of HBM): compute 1 × 304/(304 − 56) = 1.2258 s; HBM
    # 0.5 × 5.3/(5.3 − 0.3) = 0.53 s: the compute binds
    c = OpCost("gemm", 0.0, 0.0, {"compute:matrix": 1.0, "memory:hbm": 0.5})
    assert slowed_s(c, mi300x, hit) == pytest.approx(304 / 248)
    # overlapped: l0 (1 s), its 0.5 s all-reduce beside l1, which does 0.5 · 248/304 of its work meanwhile and the
    # rest alone: l1 ends at 1 + 0.5 + (1 − 0.5 · 248/304) = 2 + 0.5 · 56/304
    layers = [Layer("l0", 1.0, bucket_s=0.5, bucket_hit=hit, slowed=lambda h: slowed_s(c, mi300x, h)),
              Layer("l1", 1.0, slowed=lambda h: slowed_s(c, mi300x, h))]
    assert overlapped(layers).span_s == pytest.approx(2 + 0.5 * 56 / 304)


def test_an_op_under_a_collective_loses_sms_and_hbm_bandwidth():
    h100 = load_hardware("h100-sxm")  # 132 SMs, 3.35 TB/s HBM
    c = OpCost("gemm", 0.0, 0.0, {"compute:tensor": 1.0, "memory:hbm": 0.5})
    # 24 channels: compute 1 × 132/108 = 1.2222 s; HBM 0.5 × 3.35/(3.35 − 1) = 0.7128 s: the compute binds
    assert slowed_s(c, h100, Interference(24, 1e12)) == pytest.approx(132 / 108)
    # no SMs taken but 2 TB/s of traffic: HBM 0.5 × 3.35/1.35 = 1.2407 s binds
    assert slowed_s(c, h100, Interference(0, 2e12)) == pytest.approx(0.5 * 3.35 / 1.35)
    assert slowed_s(c, h100, Interference()) == pytest.approx(1.0)
    # a ring all-gather writes what it receives and reads what it forwards: 2 × 1 GB sent in 4 ms = 500 GB/s
    assert Interference.of("all_gather", 1e9, 4e-3, 24).hbm_bytes_per_s == pytest.approx(5e11)
    assert Interference.of("reduce_scatter", 1e9, 4e-3, 24).hbm_bytes_per_s == pytest.approx(7.5e11)


def test_overlapped_compute_runs_at_the_sms_left_while_the_collective_runs():
    # H100 all-reduce on 24 channels: a 1 s layer beside it runs at 108/132 of its pace while they overlap.
    # l0 (1 s), then its 0.5 s bucket beside l1: l1 does 0.5 · 108/132 = 0.4091 s of work in the first 0.5 s,
    # its remaining 0.5909 s alone: l1 ends at 1 + 0.5 + 0.5909 = 2.0909 s = 2 + 0.5 · 24/132
    def stretched(hit: Interference) -> float:
        return 1.0 * 132 / (132 - hit.sms)

    layers = [Layer("l0", 1.0, bucket_s=0.5, bucket_hit=Interference(24), slowed=stretched),
              Layer("l1", 1.0, slowed=stretched)]
    run = overlapped(layers)
    assert run.span_s == pytest.approx(2 + 0.5 * 24 / 132)
    assert run.exposed_s == pytest.approx(0.5 * 24 / 132)
    # without interference the bucket hides completely
    assert overlapped([Layer("l0", 1.0, bucket_s=0.5), Layer("l1", 1.0)]).span_s == pytest.approx(2.0)
    # a collective that outlasts the layer: l1 runs entirely under it, 1 × 132/108 s, and the bucket ends at 3 s
    long = [Layer("l0", 1.0, bucket_s=2.0, bucket_hit=Interference(24), slowed=stretched),
            Layer("l1", 1.0, slowed=stretched)]
    timeline = overlapped(long).schedule.timeline().set_index("op")
    assert timeline.loc["l1", "end_s"] == pytest.approx(1 + 132 / 108)
    assert overlapped(long).span_s == pytest.approx(3.0)


def test_fp32_gradient_reduction_doubles_the_reduce_scatter_bytes():
    base = dict(model="llama-3-8b", hardware="dgx-h100", devices=8, zero=3, micro_batch=1, global_batch=8,
                seq_len=1024)
    bf16 = estimate_training(TrainConfig(**base))
    fp32 = estimate_training(TrainConfig(**base, grad_reduce="fp32"))
    # the same compute; reduce-scatters of 4-byte gradients take longer, so the step cannot be shorter
    assert fp32.stages[0].total("backward") == pytest.approx(bf16.stages[0].total("backward"))
    assert fp32.step_s > bf16.step_s

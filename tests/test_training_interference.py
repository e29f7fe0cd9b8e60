"""A collective beside compute: NCCL's ring channels (SMs taken) and its HBM traffic slow the overlapped layer."""

import pytest

from perfsim.cost.opcost import OpCost
from perfsim.hardware import load_hardware
from perfsim.training.config import TrainConfig
from perfsim.training.interference import Interference, collective_channels, ring_channels, slowed_s
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
    assert collective_channels(load_hardware("mi300x"), load_hardware("mi300x-node"), crosses_nodes=False) == 0


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

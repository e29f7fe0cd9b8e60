"""The MCU cost model: MAC/cycle from inner loops, shared FPUs, partitioning, barriers, soft floats, DMA tiles,
peak SRAM, network and training workloads, non-neural kernels. Expected values are derived by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import perfsim.cost as cost_module
from perfsim.cost.mcu import mcu_cost, plan_for, sync_cycles
from perfsim.cost.mcu_kernels import mac_cycles
from perfsim.cost.mcu_memory import double_buffered, peak_sram
from perfsim.cost.roofline import level_bandwidth
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.common import DeviceCalibration
from perfsim.hardware.ranges import at_end
from perfsim.models.mcu_training import training_ops
from perfsim.models.network import load_network, network_ops
from perfsim.ops import Conv2d, Elementwise, Gemm
from perfsim.ops_classic import KMeans, Knn, RandomForest
from perfsim.ops_network import NetworkStep
from perfsim.reference import classic
from perfsim.reference.registry import CHECKS

PULP = at_end(load_hardware("pulp-open"), "low")  # 175 MHz, L2 DMA 1.4 GB/s: plain numbers, no ranges
GAP8 = load_hardware("gap8")
COUNTED = GAP8.model_copy(update={"calibration": DeviceCalibration()})  # GAP8 at its counted peak (no efficiency)
STM32 = load_hardware("stm32f746")


def test_fp16_and_fp32_mac_cycles_from_the_inner_loops_and_shared_fpus():
    # pulp-open gives each core a private FPU (PULP-TrainLib, SAMOS 2022): every loop is issue-bound.
    # fp16 mm_fp16_SIMD_4x8: 8 FMA + 6 loads + 4 shuffles = 18 instructions for 16 MACs: 18 / 16 = 1.125
    assert PULP.fpus is None
    assert mac_cycles(PULP, "fp16", 8) == pytest.approx(18 / 16)
    # fp32 mm_unroll_4x4: 16 FMA + 8 loads = 24 instructions for 16 MACs, on 8 cores as on 1: 8 × 16 / 24 = 5.33
    # MAC/cycle on the cluster, above PULP-TrainLib's measured 4.39 and the 4.0 that 4 shared FPUs would cap
    assert mac_cycles(PULP, "fp32", 8) == mac_cycles(PULP, "fp32", 1) == pytest.approx(24 / 16)
    assert mac_cycles(PULP, "int8", 8) == pytest.approx(14 / 32)  # PULP-NN: 6 loads + 8 sdotp for 32 MACs
    # a cluster built with 4 FPUs shared by 8 cores (pulp_cluster's shared_fpu_cluster): two cores per FPU, so
    # fp16's FMAs need 8 × 2 = 16 cycles < 18 (still issue-bound), fp32's 16 × 2 = 32 > 24; alone, a core has
    # an FPU to itself
    shared = PULP.model_copy(update={"fpus": 4, "fpus_source": "this test"})
    assert mac_cycles(shared, "fp16", 8) == pytest.approx(18 / 16)
    assert mac_cycles(shared, "fp32", 8) == pytest.approx(32 / 16)
    assert mac_cycles(shared, "fp32", 1) == pytest.approx(24 / 16)


def test_conv_mac_per_cycle_on_8_cores_with_the_remainder_idle():
    # A 1x1 stride-1 conv needs no im2col: one matmul region of out_channels = 10 rows. MACs = 8x8 pixels x 10 x 8
    # = 5120, 512 per row at 1.125 cycles = 576 cycles a row; 8 cores take ceil(10/8) = 2 rows: 1152 cycles, so
    # 5120 / 1152 = 4.44 MAC/cycle (6 cores idle for the second row). Operands 1024 + 160 + 1280 = 2464 B fit L1
    # (one tile): time = DMA + compute + one barrier of 4.2 cycles.
    op = Conv2d(in_channels=8, out_channels=10, height=8, width=8, kernel=1, dtype="fp16")
    c = mcu_cost(op, PULP)
    f = PULP.clock.peak
    assert op.macs / (c.resource_s["compute:fp16"] * f) == pytest.approx(5120 / 1152)
    dma = 2464 / level_bandwidth(PULP, PULP.level("l2"))
    assert c.bytes_per_level == {"l2": 2464}
    assert c.time_s == pytest.approx(1152 / f + dma + 4.2 / f)
    one = mcu_cost(op, PULP.model_copy(update={"cores": 1}))  # one core walks all 10 rows of 576 cycles
    assert one.resource_s["compute:fp16"] * f == pytest.approx(10 * 576)


def test_barrier_cycles_per_parallel_region():
    # k-means runs an assign region and a serial update region per iteration: 3 iterations = 6 regions, each one
    # barrier of 4.2 cycles (fork_cycles 0) on 8 cores = 25.2 cycles; none on one core.
    op = KMeans(samples=64, features=4, clusters=3, iterations=3)
    plan = plan_for(op, PULP, 8)
    assert len(plan.regions) == 6
    assert sync_cycles(plan, 8, PULP) == pytest.approx(25.2)
    assert sync_cycles(plan, 1, PULP) == 0


def test_emulated_fp32_on_gap8():
    # GAP8 has no FPU: a fp32 MAC = soft multiply 50 + soft add 50 + 2 loads = 102 cycles. A gemm m=1 k=8 n=8 has
    # 8 rows of 8 MACs, one row per core: 8 x 102 = 816 cycles.
    op = Gemm(m=1, k=8, n=8, dtype="fp32")
    c = mcu_cost(op, COUNTED)
    assert c.resource_s["compute:fp32"] * GAP8.clock.peak == pytest.approx(816)
    # an fp32 add of 16 elements: per element 2 loads + 1 store + one soft add (50) = 53; ceil(16/8) = 2 each.
    add = mcu_cost(Elementwise(elements=16, inputs=2, flops_per_element=1, dtype="fp32"), COUNTED)
    assert add.resource_s["compute:fp32"] * GAP8.clock.peak == pytest.approx(106)


def test_compute_efficiency_scales_compute_only():
    # gemm m=8 k=64 n=16 int8 on GAP8's 8 cores: 16 rows of 8 x 64 = 512 MACs, ceil(16 / 8) = 2 rows per core at
    # PULP-NN's 14 / 32 cycles per MAC: 2 x 512 x 14 / 32 = 448 cycles at the 175 MHz peak. compute_efficiency 0.5
    # makes it 448 / 0.5 = 896 cycles, exactly 1 / 0.5 of the uncalibrated; the barrier (4.2 cycles) and the
    # L2 DMA bytes stay. sustained_clock 87.5 MHz on top halves the clock: 448 / (0.5 x 0.5) cycles of 175 MHz,
    # and the barrier's 4.2 cycles run at 87.5 MHz.
    op = Gemm(m=8, k=64, n=16, dtype="int8")
    half = {"compute_efficiency": {"value": 0.5, "source": "test"}}
    calibrated = GAP8.model_copy(update={"calibration": DeviceCalibration(**half)})
    f = 175e6
    base, slow = mcu_cost(op, COUNTED), mcu_cost(op, calibrated)
    assert base.resource_s["compute:int8"] == pytest.approx(448 / f)
    assert slow.resource_s["compute:int8"] == pytest.approx(896 / f)
    assert slow.resource_s["compute:int8"] / base.resource_s["compute:int8"] == pytest.approx(1 / 0.5)
    assert slow.bytes_per_level == base.bytes_per_level
    assert slow.resource_s["memory:l2"] == base.resource_s["memory:l2"]
    dma = base.resource_s["memory:l2"]
    assert slow.time_s == pytest.approx(dma + 896 / f + 4.2 / f)  # one tile: DMA, then compute, then the barrier
    clocked = DeviceCalibration(**half, sustained_clock={"value": 87.5e6, "source": "test"})
    both = mcu_cost(op, GAP8.model_copy(update={"calibration": clocked}))
    assert both.resource_s["compute:int8"] == pytest.approx(448 / 0.25 / f)
    assert both.time_s == pytest.approx(dma + 448 / 0.25 / f + 4.2 / 87.5e6)


def test_gap8_calibration_is_pulp_nn_over_the_counted_kernel():
    # PULP-NN: up to 15.5 MAC/cycle INT-8 on 8 cores; the model's kernel: 32 MAC / 14 cycles x 8 cores = 256 / 14.
    # 15.5 / (256 / 14) = 0.84766, stored to 4 digits. A GEMM with rows a multiple of 8 then computes at
    # 256 / 14 x 0.8477 = 15.50 MAC/cycle.
    assert GAP8.calibration.compute_efficiency.value == pytest.approx(15.5 * 14 / 256, abs=5e-5)
    op = Gemm(m=400, k=400, n=400, dtype="int8")
    compute_s = mcu_cost(op, GAP8).resource_s["compute:int8"]
    assert 400**3 / (compute_s * GAP8.clock.peak) == pytest.approx(256 / 14 * 0.8477)


def test_double_buffered_tiles():
    # c = 8, d = 4 over 4 tiles (2 and 1 per tile): 1 + 3 x max(2, 1) + 2 = 9; one tile: d + c = 12.
    assert double_buffered(8.0, 4.0, 4) == pytest.approx(9.0)
    assert double_buffered(8.0, 4.0, 1) == pytest.approx(12.0)


TINY = """kind: network
name: tiny
description: two int8 convolutions with a residual add
source: hand-made for tests/test_mcu_cost.py
dtype: int8
layers:
  - {name: c1, op: "conv2d in_channels=1 out_channels=2 height=4 width=4 kernel=3 padding=1"}
  - {name: r1, op: "elementwise elements=32"}
  - {name: c2, op: "conv2d in_channels=2 out_channels=2 height=4 width=4 kernel=3 padding=1"}
  - {name: add, op: "elementwise elements=32 inputs=2", inputs: [c2, r1]}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def test_peak_sram_of_a_tiny_network(tiny):
    # int8: input 16 B, c1/r1/c2/add outputs 32 B each. Live: c1 = input 16 + output 32 = 48; r1 = c1's 32, in place;
    # c2 = r1 (kept for the add) 32 + output 32 = 64; add = r1 + c2 = 64, in place. Peak 64 B at c2.
    fit = peak_sram(tiny, STM32)
    assert (fit.activations_bytes, fit.peak_layer, fit.weights_bytes) == (64, "c2", 0)  # weights stay in flash
    assert fit.fits and fit.capacity_bytes == 320 * 2**10
    pulp = peak_sram(tiny, PULP)  # on PULP weights live in L2 with the activations: 2x1x9 + 2x2x9 = 54 B
    assert (pulp.weights_bytes, pulp.peak_bytes, pulp.level) == (54, 118, "l2")


def test_a_network_that_reads_an_unknown_layer_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("name: tiny", "name: bad").replace("[c2, r1]", "[c2, r9]"))
    with pytest.raises(PerfsimError, match="r9"):
        load_network(str(path))


def test_over_capacity_is_an_error():
    # 4096 x 4096 int8 weights = 16 MiB, the STM32F746's flash holds 1 MiB
    with pytest.raises(PerfsimError, match="flash"):
        mcu_cost(Gemm(m=1, k=4096, n=4096, dtype="int8"), STM32)


def test_resnet8_training_step_macs():
    # forward MACs: conv1 442,368; stack 1 2 x 2,359,296; stack 2 1,179,648 + 2,359,296 + 131,072 (shortcut);
    # stack 3 1,179,648 + 2,359,296 + 131,072; dense 640: 12,501,632. Training: 3x, less conv1's input gradient.
    forward = network_ops("resnet8", "fp16")
    macs = sum(op.macs for op in forward if isinstance(op, Conv2d)) + 640
    assert macs == 12_501_632
    step = NetworkStep(network="resnet8", step="train", dtype="fp16")
    assert step.macs == 3 * 12_501_632 - 442_368
    assert step.flops == pytest.approx(sum(op.flops for op in training_ops(forward)))


def test_a_network_costs_the_sum_of_its_layers():
    step = NetworkStep(network="ds-cnn", dtype="int8")
    total = sum(mcu_cost(op, GAP8).time_s for op in step.layers())
    assert mcu_cost(step, GAP8).time_s == pytest.approx(total)


def test_unknown_network_is_a_clear_error():
    with pytest.raises(ValidationError, match="unknown network 'resnet9'"):
        NetworkStep(network="resnet9")


def test_partitioning_gives_the_speedup():
    # 16 trees over 5, 6 or 7 cores: the busiest core walks ceil(16/n) = 4, 3, 3, 3 trees; compute of the tree
    # region on 6 and 7 cores equals that on 6 (3 trees each), the extra core idles.
    op = RandomForest(trees=16, depth=6, features=16, classes=4)
    per_tree = plan_for(op, PULP, 8).regions[0].cycles_per_item
    tree_cycles = {n: -(-16 // n) * per_tree for n in (5, 6, 7)}
    assert tree_cycles[6] == tree_cycles[7] < tree_cycles[5]


def test_kernel_cores_field_selects_the_cores():
    knn = Knn(train=1000, features=16, k=5)
    assert mcu_cost(knn.model_copy(update={"cores": 1}), PULP).detail["cores"] == "1"
    assert mcu_cost(knn, PULP).detail["cores"] == "8"
    with pytest.raises(ValidationError, match="k"):
        Knn(train=4, features=2, k=5)


def test_cost_dispatches_mcus_once_wired(monkeypatch):
    monkeypatch.setitem(cost_module.KIND_COSTS, "mcu", mcu_cost)
    op = Conv2d(in_channels=16, out_channels=16, height=32, width=32, kernel=3, padding=1, dtype="fp16")
    assert cost_module.cost(op, PULP).time_s == pytest.approx(mcu_cost(op, PULP).time_s)


def test_mcu_cost_rejects_other_kinds():
    with pytest.raises(PerfsimError, match="prices MCUs"):
        mcu_cost(Gemm(m=1, k=8, n=8), load_hardware("h100-sxm"))


@pytest.mark.parametrize("name", ["decision-tree", "random-forest", "svm-rbf", "knn", "kmeans", "naive-bayes"])
def test_classic_reference_kernels(name):
    assert classic.__name__  # importing the module registers its checks
    outcome = next(c for c in CHECKS if c.name == name).run()
    assert outcome.passed, outcome.detail

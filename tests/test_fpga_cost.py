"""The FPGA model by hand: MAC-array cycles per dataflow, buffers and AXI ports, attention, M3ViT frames, energy."""

import pytest

from perfsim.cost import cost
from perfsim.cost.fpga import attention_cycles, fpga_cost, linear_cycles, port_bandwidth
from perfsim.cost.fpga_frame import (
    energy_comparison,
    expert_weight_bytes,
    frame_cost,
    frame_scenario,
    frame_step,
    moe_layers,
)
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.models import load_model
from perfsim.models.scenario import Scenario
from perfsim.ops import Attention, Gemm, MoE
from perfsim.specfile import validate
from perfsim.validation.case import load_cases

ZCU102 = load_hardware("zcu102-edge-moe")
DESIGN = ZCU102.design
OS_DESIGN = DESIGN.model_copy(update={"dataflow": "output_stationary"})
M3VIT = load_model("m3vit")


def test_row_vector_cycles_fill_the_array():
    # Edge-MoE's qkv: M=129 patches, K=192, N=576 on 16 x 16: 129 · ⌈192/16⌉ · ⌈576/16⌉ = 129 · 12 · 36 = 55,728
    # cycles, plus one pipeline fill of ⌈log2 16⌉ + 2 = 6
    assert linear_cycles(129, 192, 576, DESIGN) == 55_734


def test_row_vector_cycles_of_a_shape_that_does_not_fill_the_array():
    # M=3, K=20, N=5: ⌈20/16⌉ = 2 input tiles (the second holds 4 of 16 inputs), ⌈5/16⌉ = 1 output tile (5 of 16
    # outputs): 3 · 2 · 1 + 6 = 12 cycles for 300 MACs, 300 / (12 · 256) = 9.8 % of the array
    assert linear_cycles(3, 20, 5, DESIGN) == 12


def test_output_stationary_cycles_with_fill_and_drain():
    # 32 x 64 x 32: ⌈32/16⌉ · ⌈32/16⌉ = 4 output tiles, each K + 16 + 16 − 2 = 64 + 30 = 94 cycles → 376
    assert linear_cycles(32, 64, 32, OS_DESIGN) == 376
    # 3 x 20 x 5 fills one tile partly: 1 · 1 · (20 + 30) = 50 cycles
    assert linear_cycles(3, 20, 5, OS_DESIGN) == 50


def test_a_linear_layer_is_compute_bound_and_its_outputs_set_the_port_time():
    # compute 55,734 cycles / 300 MHz = 185.78 µs. Streams, each on its own 128-bit port (16 B × 300 MHz =
    # 4.8 GB/s): weights 192·576·2 B = 221,184; inputs 129·192·4 = 99,072; outputs 129·576·4 = 297,216 → the
    # busiest port 297,216 / 4.8e9 = 61.92 µs; all 617,472 B over the 19.2 GB/s DDR = 32.16 µs
    c = fpga_cost(Gemm(m=129, k=192, n=576, dtype="int32", weight_dtype="int16", weight_shared=True), ZCU102)
    assert port_bandwidth(ZCU102) == pytest.approx(4.8e9)
    assert c.resource_s["compute:int16"] == pytest.approx(55_734 / 300e6)
    assert c.resource_s["memory:ddr4"] == pytest.approx(297_216 / 4.8e9)
    assert c.bytes_per_level == {"ddr4": pytest.approx(617_472)}
    assert c.bound == "compute:int16" and c.overhead_s == 0


def test_weights_larger_than_a_buffer_re_stream_the_inputs():
    # 1024 x 1024 int16 weights = 2,097,152 B over a 294,912 B buffer: ⌈7.11⌉ = 8 chunks, so the 8·1024·4 = 32,768 B
    # of inputs stream 8 times: 2,097,152 + 262,144 + 32,768 (outputs) = 2,392,064 B
    c = fpga_cost(Gemm(m=8, k=1024, n=1024, dtype="int32", weight_dtype="int16", weight_shared=True), ZCU102)
    assert c.bytes == pytest.approx(2_392_064)
    assert c.resource_s["memory:ddr4"] == pytest.approx(2_097_152 / 4.8e9)  # the weights' port


def test_attention_streams_keys_once_per_query_group():
    # 129 patches, 3 heads x 64: per pass ⌈129/4⌉ = 33 query groups x 129 keys x 192/8 = 24 words = 102,168
    # cycles; two passes (QKᵀ, PV) = 204,336 cycles = 681.12 µs. Pass 1 streams K 33 times: 129·192·4·33 =
    # 3,269,376 B on one port = 681.12 µs; pass 2 the same for V: memory 1362.24 µs, twice the compute
    op = Attention(heads=3, head_dim=64, q_len=129, kv_len=129, causal=False, fused=False, dtype="int32")
    assert attention_cycles(op, DESIGN) == 204_336
    c = fpga_cost(op, ZCU102)
    assert c.resource_s["compute:int32"] == pytest.approx(204_336 / 300e6)
    assert c.resource_s["memory:ddr4"] == pytest.approx(2 * 3_269_376 / 4.8e9)
    assert c.bound == "memory:ddr4"


def test_cost_dispatches_to_the_fpga_model_with_board_energy():
    # 185.78 µs busy at the board's 7.42 W (power model, no overhead): 1.3785 mJ
    op = Gemm(m=129, k=192, n=576, dtype="int32", weight_dtype="int16", weight_shared=True)
    c = cost(op, ZCU102)
    assert c.time_s == pytest.approx(fpga_cost(op, ZCU102).time_s)
    assert c.energy_j == pytest.approx(7.42 * 55_734 / 300e6)
    assert c.energy_model == "power"


def test_other_chips_are_refused():
    with pytest.raises(PerfsimError, match="prices FPGA designs"):
        fpga_cost(Gemm(m=1, k=1, n=1), load_hardware("h100-sxm"))


def test_task_level_sparsity_loads_only_the_task_experts():
    # 6 MoE layers (the odd ones of 12) x d experts x (192·384 + 384·192) int16 weights = 6 · d · 294,912 B
    assert moe_layers(M3VIT) == 6
    assert expert_weight_bytes(M3VIT, 16, "int16") == 6 * 16 * 294_912 == 28_311_552
    assert expert_weight_bytes(M3VIT, 2, "int16") == 3_538_944
    with pytest.raises(PerfsimError, match="between top_k"):
        expert_weight_bytes(M3VIT, 1, "int16")


def test_uniform_routing_touches_every_expert_and_streams_their_weights():
    # 129 patches, top-2 of 16: 16 · (1 − (14/16)^129) = 16 − 5e-7 → 16 experts, ⌈258/16⌉ = 17 patches each.
    # Per MoE layer: the gate 129 x 192 x 16 streams 129·192·4 = 99,072 B of inputs on its busiest port = 20.64 µs
    # (compute 129·12·1 + 6 = 1,554 cycles = 5.18 µs); each expert's fc1 17 x 192 x 384 and fc2 17 x 384 x 192 stream
    # 192·384·2 = 147,456 B of weights = 30.72 µs each (compute 17·12·24 + 6 = 4,902 cycles = 16.34 µs). Memory
    # (20.64 + 32 · 30.72) µs = 1,003.68 µs > compute (1,554 + 32 · 4,902) / 300 MHz = 528.06 µs; 6 layers: 6,022.08 µs
    moe = [t.op for t in frame_step(ZCU102, M3VIT).trace.ops if isinstance(t.op, MoE)]
    assert [(op.tokens, round(op.experts_touched)) for op in moe] == [(129, 16)] * len(moe)
    frame = frame_cost(ZCU102, M3VIT)
    assert frame.by_type["experts"][0] == pytest.approx(6 * (20.64e-6 + 32 * 30.72e-6))


def test_expert_time_in_a_frame_of_two_experts_per_task():
    # 2 experts per task: ⌈129·2/2⌉ = 129 patches each; fc1 129 x 192 x 384 = 129·12·24 + 6 = 37,158 cycles, fc2
    # the same; its busiest port (outputs 129·384·4 = 198,144 B) takes 41.28 µs, less than its 123.86 µs of compute.
    # The gate scores the task's 2 experts: 129 x 192 x 2 = 129·12·1 + 6 = 1,554 cycles, as with 16 (one output
    # tile). 6 layers x (1,554 + 2 · 2 · 37,158) / 300 MHz = 6 · 150,186 / 300e6 = 3,003.72 µs
    frame = frame_cost(ZCU102, M3VIT, experts_per_task=2)
    assert frame.by_type["experts"][0] == pytest.approx(6 * 150_186 / 300e6)
    assert frame.latency_s == pytest.approx(sum(s for s, _ in frame.by_type.values()))
    assert frame.energy_j == pytest.approx(7.42 * frame.latency_s)
    with pytest.raises(PerfsimError, match="between top_k"):
        frame_cost(ZCU102, M3VIT, experts_per_task=17)


def test_a_baseline_frame_runs_fp32_with_attention_unfused_at_tdp():
    # validation/fpga.yaml's rules: fp32 weights and activations, attention as separate kernels; the power model
    # keeps the A6000 at its 300 W TDP through every op and launch, so E = 300 W x the frame's latency
    gpu = load_hardware("rtx-a6000")
    step = frame_step(gpu, M3VIT)
    attention = [t.op for t in step.trace.ops if isinstance(t.op, Attention)]
    assert attention and all(not op.fused and op.dtype == "fp32" and op.q_len == 129 for op in attention)
    frame = frame_cost(gpu, M3VIT)
    assert frame.energy_j == pytest.approx(300 * frame.latency_s)


def test_the_validation_cases_price_the_frame():
    # EDGEMOE-01-gpu / -02-cpu must be the very frames frame_cost prices: one path, not two
    cases = [c for c in load_cases() if c.id.startswith("EDGEMOE")]
    assert len(cases) == 2
    for case in cases:
        for measure in (case.numerator, case.denominator):
            chip = load_hardware(measure.hardware)
            fields = {**measure.workload.scenario, "hardware": measure.hardware}
            assert validate(Scenario, fields, "scenario") == frame_scenario(chip, M3VIT)


def test_energy_efficiency_gains_are_ratios_of_predicted_energies():
    gpu, cpu = load_hardware("rtx-a6000"), load_hardware("xeon-6226r")
    result = energy_comparison(ZCU102, gpu, cpu, M3VIT)
    e = result.energy_j
    assert set(e) == {"zcu102-edge-moe", "rtx-a6000", "xeon-6226r"}
    assert result.fpga_vs_gpu == pytest.approx(e["rtx-a6000"] / e["zcu102-edge-moe"])
    assert result.fpga_vs_cpu == pytest.approx(e["xeon-6226r"] / e["zcu102-edge-moe"])
    assert e["zcu102-edge-moe"] == pytest.approx(7.42 * frame_cost(ZCU102, M3VIT).latency_s)


def test_unknown_energy_is_an_error_not_a_number():
    gpu = load_hardware("rtx-a6000").model_copy(update={"power": None})
    with pytest.raises(PerfsimError, match="rtx-a6000: energy per frame unknown"):
        energy_comparison(ZCU102, gpu, load_hardware("xeon-6226r"), M3VIT)

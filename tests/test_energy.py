"""Energy of ops, steps and runs: the per-op model, the power model, and chips that wait; numbers by hand."""

from pathlib import Path

import pytest

from perfsim.cost import OpCost, cost
from perfsim.cost.energy import (
    average_power_w,
    energy_source,
    joules_per_token,
    step_energy,
    waiting_power_w,
    with_waiting,
)
from perfsim.errors import PerfsimError
from perfsim.hardware import load_hardware
from perfsim.hardware.common import Calibrated, DeviceCalibration, Power
from perfsim.hardware.energy import EnergySpec, unknown_energy_levels
from perfsim.hardware.system import join
from perfsim.ops import Collective, Gemm

GEMM_4096 = Gemm(m=4096, n=4096, k=4096, dtype="bf16")

TOY = """\
name: toy
kind: accelerator
vendor: nobody
description: a made-up chip with per-op energies, for hand-checked sums
clock: {peak: 1 GHz, source: made up}
compute:
  - {name: mac, role: matrix, peak: {fp16: 1 TFLOP/s}, source: made up}
memory:
  - {name: sram, capacity: 1 MiB, bandwidth: 1 TB/s, cache: true, source: made up}
  - {name: dram, capacity: 1 GiB, bandwidth: 100 GB/s, source: made up}
links:
  - {name: toylink, topology: switch, count: 1, bandwidth_per_direction: 10 GB/s, latency: 1 us, source: made up}
energy:
  per_flop: {fp16: 1 pJ}
  per_byte: {dram: 10 pJ}
  per_link_byte: {toylink: 5 pJ}
  static_power: 2 W
  source: made up for the test
"""


@pytest.fixture
def toy(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY)
    return load_hardware(str(path))


def test_h100_gemm_energy_from_the_power_model():
    # 4096³ bf16 GEMM on h100-sxm given a (made-up) zero launch cost: 512 tiles of 128×256 in 4 waves on 132 SMs,
    # each SM 4 × 2·128·256·4096 = 1,073,741,824 FLOP at 989.4 TFLOP/s × 0.7009 (calibrated) / 132 = 204.384 µs.
    # HBM: A, B, C of 4096² × 2 B = 100,663,296 B at 3.35 TB/s × 0.8866 × 0.97 of the SMs busy = 34.95 µs, so the
    # tensor cores bind and are busy the whole op: u = 1. P = idle + 1 × (700 W − idle) = 700 W whatever the idle
    # power; E = 700 W × 204.384 µs = 0.143069 J.
    h100 = load_hardware("h100-sxm")
    no_launch = h100.calibration.model_copy(update={"op_overhead": Calibrated[float](value=0.0, source="made up")})
    c = cost(GEMM_4096, h100.model_copy(update={"calibration": no_launch}))
    seconds = 4 * 2 * 128 * 256 * 4096 / (989.4e12 * 0.7009 / 132)
    assert c.bound == "compute:bf16" and c.utilization == 1.0
    assert c.time_s == pytest.approx(seconds, rel=1e-12)
    assert c.energy_j == pytest.approx(700 * seconds, rel=1e-12)
    assert c.energy_j == pytest.approx(0.143069, rel=1e-5)
    # with the shipped spec's 2.43 µs launch (CAL-LAUNCH-H100) the chip stays at its active power through it
    assert cost(GEMM_4096, h100).energy_j == pytest.approx(700 * (seconds + 2.43e-6), rel=1e-12)
    assert c.energy_model == "power"
    assert c.as_dict()["energy_j"] == c.energy_j and c.as_dict()["energy_model"] == "power"


def test_power_model_keeps_the_active_power_through_the_op_overhead():
    # The same GEMM with a (made-up) 5 µs op overhead and 100 W idle: a launch gap of microseconds is far shorter
    # than power management reacts, so the chip draws its TDP throughout: E = 700 × (204.384 + 5) µs = 0.146569 J,
    # whatever the idle power (which only prices waiting between steps).
    h100 = load_hardware("h100-sxm")
    overhead = DeviceCalibration(op_overhead=Calibrated[float](value=5e-6, source="made up"),
                                 compute_efficiency=h100.calibration.compute_efficiency,
                                 memory_efficiency=h100.calibration.memory_efficiency)
    chip = h100.model_copy(update={"calibration": overhead,
                                   "power": Power(tdp=700, idle=100, source="made up")})
    c = cost(GEMM_4096, chip)
    busy = 4 * 2 * 128 * 256 * 4096 / (989.4e12 * 0.7009 / 132)
    assert c.energy_j == pytest.approx(700 * (busy + 5e-6), rel=1e-12)
    assert c.energy_j == pytest.approx(0.146569, rel=1e-5)
    no_idle = chip.model_copy(update={"power": Power(tdp=700, source="made up")})
    assert cost(GEMM_4096, no_idle).energy_j == c.energy_j


def test_unknown_power_gives_no_energy_not_zero():
    chip = load_hardware("h100-sxm").model_copy(update={"power": None})
    c = cost(GEMM_4096, chip)
    assert c.energy_j is None and c.energy_model is None
    assert c.as_dict()["energy_j"] is None
    fpga = load_hardware("zcu102-edge-moe").model_copy(update={"power": None})
    assert cost(Gemm(m=64, n=64, k=64, dtype="int16"), fpga).energy_j is None


def test_per_op_energies_from_a_spec(toy):
    # 64³ fp16 GEMM on the toy chip (uncalibrated, one core, the default 128×128×32 tile), cold: one tile padded to
    # 128 × 128, K in 2 steps of 32: 2 · 128 · 128 · 64 = 2,097,152 FLOP at 1 TFLOP/s × 0.7 = 2.995931 µs; A, B, C of
    # 64² × 2 B = 3 × 8,192 = 24,576 B from DRAM at 100 GB/s × 0.8 = 0.3072 µs; plus the default 5 µs launch:
    # time_s = 7.995931 µs. E counts the useful FLOPs and the bytes moved:
    # E = 524,288 × 1 pJ + 24,576 B × 10 pJ + 2 W × 7.995931 µs
    #   = 0.524288 µJ + 0.24576 µJ + 15.991863 µJ = 16.761911 µJ.
    c = cost(Gemm(m=64, n=64, k=64, dtype="fp16"), toy)
    assert c.time_s == pytest.approx(2 * 128 * 128 * 64 / 0.7e12 + 5e-6, rel=1e-12)
    assert c.bytes_per_level == {"dram": 24576}
    assert c.energy_j == pytest.approx(524_288e-12 + 24_576 * 10e-12 + 2 * c.time_s, rel=1e-12)
    assert c.energy_j == pytest.approx(16.761911e-6, rel=1e-6)
    assert c.energy_model == "per-op"


def test_per_op_model_needs_a_price_for_every_count(toy):
    # warm: the operands sit in SRAM, which the energy block does not price; toy has no power block either
    c = cost(Gemm(m=64, n=64, k=64, dtype="fp16"), toy, cache="warm")
    assert c.bytes_per_level == {"sram": 24576}
    assert c.energy_j is None and c.energy_model is None


def test_per_op_collective_prices_the_bytes_sent_per_link(toy):
    # all_reduce of 1 MB fp16 over 2 toy chips joined by toylink (10 GB/s, α = 1 µs per LL step): each rank
    # sends 2(n − 1)/n · S = 1e6 B in 2(n − 1) = 2 steps. The library picks ring/Simple: 8.4 µs once + 2 steps ×
    # (1 µs + 2.8 µs) + 1e6 / 1e10 s = 116 µs (LL: 6.6 + 2 + 200 µs; LL128: 14 + 4.6 + 106.7 µs). Reduction:
    # S / 2 B = 500,000 fp16 adds. E = 5e5 × 1 pJ + 1e6 B × 5 pJ + 2 W × 116 µs = 0.5 + 5 + 232 µJ = 237.5 µJ.
    c = cost(Collective(kind="all_reduce", bytes=1e6, dtype="fp16"), join(toy, 2))
    assert c.time_s == pytest.approx(116e-6, rel=1e-12)
    assert c.energy_j == pytest.approx(237.5e-6, rel=1e-12)
    assert c.energy_model == "per-op"
    # a bf16 reduction: no unit of the toy chip runs bf16 (nor fp32), so the per-op model has no price
    assert cost(Collective(kind="all_reduce", bytes=1e6), join(toy, 2)).energy_j is None


def test_collective_on_the_power_model_draws_tdp_while_its_link_is_busy():
    system = load_hardware("dgx-h100")
    c = cost(Collective(kind="all_reduce", bytes=2**30), system)
    assert c.bound.startswith("link:") and c.overhead_s == 0
    assert c.energy_j == pytest.approx(700 * c.time_s, rel=1e-12)


def test_duplex_uses_its_simulators_dram_and_mac_energies():
    # 4096³ fp16 GEMM on duplex-logic-pim's xPU (the accelerator model, no L2 level in the spec): 8 waves of 11×12
    # tile blocks read A 2.75 times and B 3 times from HBM, and write C once: 6.75 × 4096² × 2 B = 226,492,416 B
    # × 27.84 pJ/B (0.891 nJ per 32 B) = 6.306 mJ; 2 · 4096³ FLOP × 0.23 pJ = 31.611 mJ; no static power listed:
    # E = 37.917 mJ.
    c = cost(Gemm(m=4096, n=4096, k=4096, dtype="fp16"), load_hardware("duplex-logic-pim"))
    assert c.energy_j == pytest.approx(2 * 4096**3 * 0.23e-12 + 6.75 * 4096**2 * 2 * 27.84e-12, rel=1e-12)
    assert c.energy_j == pytest.approx(0.037917, rel=1e-4)
    assert c.energy_model == "per-op"


def _op(name: str, seconds: float, joules: float | None) -> OpCost:
    return OpCost(name, 0.0, 0.0, {"compute:bf16": seconds}, energy_j=joules)


def test_step_energy_counts_chips_that_wait():
    # op a: 2 J and 1 s per chip, run 3 times on 4 chips; op b: 0.5 J and 0.25 s, run twice on 2 chips.
    # Ops: 3 × 4 × 2 + 2 × 2 × 0.5 = 26 J over 3 × 4 × 1 + 2 × 2 × 0.25 = 13 busy chip-seconds.
    # 8 chips × 4 s = 32 chip-seconds, 19 of them waiting at 10 W = 190 J: E = 216 J.
    runs = [(_op("a", 1.0, 2.0), 3, 4), (_op("b", 0.25, 0.5), 2, 2)]
    energy = step_energy(runs, devices=8, step_s=4.0, waiting_w=10.0)
    assert energy == pytest.approx(216.0)
    assert joules_per_token(energy, 54) == pytest.approx(4.0)
    assert average_power_w(energy, 4.0) == pytest.approx(54.0)
    assert step_energy(runs, devices=8, step_s=4.0, waiting_w=None) is None  # chips wait, their power unknown
    # every chip busy all step (4 chips × 3 s): no waiting power needed
    assert step_energy([(_op("a", 1.0, 2.0), 3, 4)], devices=4, step_s=3.0, waiting_w=None) == pytest.approx(24.0)
    assert step_energy([*runs, (_op("c", 1.0, None), 1, 1)], devices=8, step_s=4.0, waiting_w=10.0) is None
    with pytest.raises(ValueError, match="≥ 0"):
        step_energy([(_op("a", 1.0, 2.0), -1, 4)], devices=8, step_s=4.0, waiting_w=10.0)


def test_serving_run_adds_the_idle_time_between_iterations():
    # 3 iterations of 2 chips: 50 J over 0.5 s of each chip's time; a 1 s run leaves 2 × 1 − 2 × 0.5 = 1
    # chip-second idle at 40 W: E = 50 + 40 = 90 J, 90 W on average.
    energy = with_waiting(50.0, busy_chip_s=2 * 0.5, devices=2, span_s=1.0, waiting_w=40.0)
    assert energy == pytest.approx(90.0)
    assert average_power_w(energy, 1.0) == pytest.approx(90.0)
    assert with_waiting(None, 1.0, 2, 1.0, 40.0) is None
    assert joules_per_token(None, 10) is None and average_power_w(90.0, 0.0) is None


def test_waiting_power(toy):
    assert waiting_power_w(toy) == 2.0  # the per-op model's static power
    assert waiting_power_w(load_hardware("duplex-logic-pim")) == 0.0  # per-op energies list no static power
    assert waiting_power_w(load_hardware("h100-sxm")) is None  # TDP known, idle power not
    assert waiting_power_w(load_hardware("zcu102-edge-moe")) is None


def test_energy_source_says_which_model(toy):
    assert energy_source(toy).startswith("per-op energies (made up")
    assert energy_source(load_hardware("h100-sxm")).startswith("power model: TDP 700 W, idle power unknown")
    assert energy_source(load_hardware("zcu102-edge-moe")).startswith("power model: TDP 7.42 W")
    assert energy_source(load_hardware("h100-sxm").model_copy(update={"power": None})).startswith("unknown")


def test_energy_per_byte_keys_must_name_memory_levels():
    spec = EnergySpec(per_byte={"hbm": 1e-12, "l3": 1e-12}, per_link_byte={"nvswitch": 1e-12}, source="made up")
    assert unknown_energy_levels(spec, ["l2", "hbm"]) == "energy.per_byte names unknown levels ['l3'] (levels: l2, hbm)"
    assert unknown_energy_levels(spec, ["hbm", "l3"]) is None


def test_energy_spec_rejects_bad_values(tmp_path):
    cases = (("per_flop: {fp16: 1 pJ}", "per_flop: {fp16: -1 pJ}", "per_flop.fp16: energy must be positive"),
             ("per_flop: {fp16: 1 pJ}", "per_flop: {fp99: 1 pJ}", "unknown dtype 'fp99'"),
             ("per_byte: {dram: 10 pJ}", "per_byte: {dram: 10 pW}", "per_byte.dram: '10 pW' is not a energy"),
             ("static_power: 2 W", "joules: 1 J", "unknown field 'joules'"))
    for case, (good, bad, words) in enumerate(cases):
        (tmp_path / str(case)).mkdir()
        path = tmp_path / str(case) / "toy.yaml"  # a new path each time: loaded specs are cached by path
        path.write_text(TOY.replace(f"  {good}", f"  {bad}"))
        with pytest.raises(PerfsimError, match=words):
            load_hardware(str(path))


def test_serving_energy_is_busy_power_plus_idle_power_between_iterations(tmp_path):
    """A100 on the power model (400 W while an op runs, launches included) with a stated 50 W idle: one chip's
    energy = 400 W · Σ iteration seconds + 50 W · (makespan − Σ iteration seconds)."""
    import numpy as np
    import yaml

    import perfsim as ps

    spec = yaml.safe_load((Path(__file__).parents[1] / "hardware_specs/a100-sxm-80gb.yaml").read_text())
    spec["name"] = "a100-idle"
    spec["power"]["idle"] = "50 W"
    path = tmp_path / "a100-idle.yaml"
    path.write_text(yaml.safe_dump(spec))
    served = ps.serve("llama-2-7b", str(path), rate=2, requests=30)
    result, summary = served.run.result, served.summary
    busy_s = float(np.frombuffer(result.durations_s, dtype=float).sum())
    expected = 400 * busy_s + 50 * (result.makespan_s - busy_s)
    assert summary["energy_j"] == pytest.approx(expected, rel=1e-9)
    assert summary["joules_per_token"] == pytest.approx(expected / result.output_tokens, rel=1e-9)
    assert 50 < summary["average_power_w"] < 400
    assert ps.serve("llama-2-7b", "a100-sxm-80gb", rate=2, requests=5).summary["energy_j"] is None  # idle unknown


def test_a_spec_whose_per_byte_energy_names_no_level_is_refused(tmp_path):
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "hardware_specs/duplex-logic-pim.yaml").read_text())
    spec["energy"]["per_byte"]["l3"] = "1 pJ"
    path = tmp_path / "duplex-logic-pim.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(PerfsimError, match=r"energy.per_byte names unknown levels \['l3'\]"):
        load_hardware(str(path))


def test_duplex_prices_fp32_vector_work_at_its_simulators_one_flop_energy():
    # an fp16 add of 2^20 elements: 2^20 FLOP, computed in fp32 on the xPU's vector units (they run only fp32),
    # at Duplex's simulator's one energy per FLOP, 0.23 pJ; 3 × 2^20 × 2 B = 6,291,456 B of HBM at 27.84 pJ/B.
    # E = 2^20 × 0.23e-12 + 6,291,456 × 27.84e-12 = 0.2412 µJ + 175.154 µJ = 175.395 µJ
    import perfsim as ps

    c = ps.estimate("elementwise elements=1048576 inputs=2 dtype=fp16", "duplex-logic-pim").cost
    assert c.resource_s.get("compute:fp32") and c.energy_model == "per-op"
    assert c.energy_j == pytest.approx(2**20 * 0.23e-12 + 3 * 2**20 * 2 * 27.84e-12, rel=1e-12)
    assert c.energy_j == pytest.approx(175.395e-6, rel=1e-5)


@pytest.mark.parametrize("dtype", [None, "fp16"])
def test_a_whole_duplex_step_has_an_energy(dtype):
    # every op is priced: the xPU's by its FLOPs × 0.23 pJ (bf16, fp16 or fp32 alike) + HBM bytes × 27.84 pJ/B,
    # the Logic-PIM's by pim_energy_j; one chip busy the whole step, so E = Σ repeats × op energy
    import perfsim as ps

    dtypes = {"weight_dtype": dtype, "activation_dtype": dtype, "kv_dtype": dtype} if dtype else {}
    step = ps.step("llama-3-8b", "duplex-logic-pim", **dtypes).estimate
    for c in step.costs:
        if "pim" not in c.bytes_per_level:
            assert c.energy_j == pytest.approx(c.flops * 0.23e-12 + c.bytes_per_level["hbm"] * 27.84e-12, rel=1e-9)
    total = sum(c.energy_j * traced.repeat for traced, c in zip(step.trace.ops, step.costs, strict=True))
    assert step.summary()["energy_j"] == pytest.approx(total, rel=1e-9)

"""Joules: what an op costs in energy on one chip, and a step or a serving run on all of them.

Two models, chosen per op; each OpCost records which one (`energy_model`):

per-op   (the chip's spec has an `energy:` block listing every count the op has)
         E = Σ_dtype FLOPs × J/FLOP + Σ_level bytes × J/B + Σ_link bytes sent × J/B + static_power × time_s
         FLOPs by the dtype the chip computes in (after promotion, as the roofline picks), bytes as
         the cost model counts them (memory levels; for a collective, the bytes each rank sends per
         link). Terms the block does not list are not counted: its source says what it covers.
power    (else, with a `power:` block) P = idle + u × (TDP − idle) per chip, E = P × time_s, where
         u = 1 while an op runs: a chip driving its bottleneck (tensor cores, HBM or a link) is taken to
         draw its TDP, the sustained power its board is built for (the linear utilisation model of Fan,
         Weber & Barroso, ISCA 2007, with utilisation the busy fraction, as nvidia-smi's "GPU
         utilization" counts it). An op's fixed overhead (a kernel launch, microseconds) counts as busy
         too: power management reacts over milliseconds, so a chip between back-to-back kernels stays at
         its active power. So E = TDP × time_s. This is
         an upper bound while busy: measured LLM decode, bound by HBM, draws well below TDP (an H100
         SXM at ≈ 300 W decoding at batch 1, ≈ 600 W at batch 128: ML.ENERGY benchmark v3.0 as quoted
         by vllm-semantic-router's fleet-sim power-model page), since the SMs wait while memory
         streams; no split of TDP between compute and memory is sourced for the shipped chips, so
         none is assumed.
unknown  (None) with neither, or when a needed number is missing (waiting time without an idle
         power): never a made-up number.

A step (all chips): E = Σ_ops runs × chips × E_op + P_wait × (devices × step_s − Σ_ops runs × chips ×
time_s), the second term the chip-seconds no op fills (pipeline bubbles, stages waiting on each
other), drawn at the waiting power: `power.idle` on the power model, `energy.static_power` (0 if
not listed) on the per-op model. joules_per_token = E / tokens; average_power_w = E / seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import compute_rate
from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.ops import Collective, OpBase

EnergyModel = Literal["per-op", "power"]


def op_energy(op: OpBase, c: OpCost, hardware: Device | System) -> tuple[float | None, EnergyModel | None]:
    """(joules one chip spends on `op`, the model that priced it) for the OpCost `c` of `op` on `hardware`."""
    chip = hardware.device
    if chip.kind == "pim" and "pim" in c.bytes_per_level:  # placed on the Logic-PIM: its own path's energies
        from perfsim.cost.pim import pim_energy_j

        return pim_energy_j(c, chip.pim), "per-op"
    if chip.kind == "mac_array" and chip.array.pe_energy is not None:  # the array's own per-PE-cycle energy
        from perfsim.cost.mac_array import mac_array_energy_j

        return mac_array_energy_j(c, chip), "per-op"
    joules = per_op_energy(op, c, chip)
    if joules is not None:
        return joules, "per-op"
    joules = power_model_energy(c, chip)
    return (joules, "power") if joules is not None else (None, None)


def per_op_energy(op: OpBase, c: OpCost, chip: Device) -> float | None:
    """Counts × the spec's per-op energies; None if the chip has no `energy:` block or it lacks a count's price."""
    spec = chip.energy
    if spec is None:
        return None
    total = spec.static_power * c.time_s if spec.static_power else 0.0
    for engine, flops in op.work():
        if flops:
            try:
                dtype, _ = compute_rate(chip, engine, op.compute_dtype)
            except PerfsimError:  # a collective's reduction in a dtype no unit runs: no price for it
                return None
            if dtype not in spec.per_flop:
                return None
            total += flops * spec.per_flop[dtype]
    prices = spec.per_link_byte if isinstance(op, Collective) else spec.per_byte
    for name, moved in c.bytes_per_level.items():
        if moved and name not in prices:
            return None
        total += moved * prices.get(name, 0.0)
    return total


def power_model_energy(c: OpCost, chip: Device) -> float | None:
    """TDP × the op's seconds, its launch overhead included; None without `power:`."""
    return chip.power.tdp * c.time_s if chip.power is not None else None


def waiting_power_w(chip: Device) -> float | None:
    """Watts a chip draws while no op runs on it: the per-op model's static power, else the idle power."""
    if chip.energy is not None:
        return chip.energy.static_power or 0.0
    return chip.power.idle if chip.power else None


def with_waiting(busy_energy_j: float | None, busy_chip_s: float, devices: int, span_s: float,
                 waiting_w: float | None) -> float | None:
    """`busy_energy_j` plus `waiting_w` over the chip-seconds of `devices` × `span_s` that `busy_chip_s` leaves.

    None if the busy energy is unknown, or chips wait and their waiting power is unknown. Ops that
    overlap on one chip (the DES engine) can fill more than the span: nothing is then added.
    """
    if busy_energy_j is None:
        return None
    waiting_s = devices * span_s - busy_chip_s
    if waiting_s <= 1e-12 * devices * span_s:
        return busy_energy_j
    return None if waiting_w is None else busy_energy_j + waiting_w * waiting_s


def step_energy(runs: Iterable[tuple[OpCost, int, int]], devices: int, step_s: float,
                waiting_w: float | None) -> float | None:
    """Joules of a step on all `devices` chips: `runs` are (op cost, times run, chips running it each time).

    Raise ValueError if a count is negative.
    """
    busy_j, busy_s = 0.0, 0.0
    for c, times, chips in runs:
        if times < 0 or chips < 0:
            raise ValueError(f"{c.op}: times run and chips must be ≥ 0, got {times} and {chips}")
        if c.energy_j is None:
            return None
        busy_j += times * chips * c.energy_j
        busy_s += times * chips * c.time_s
    return with_waiting(busy_j, busy_s, devices, step_s, waiting_w)


def joules_per_token(energy_j: float | None, tokens: float) -> float | None:
    return energy_j / tokens if energy_j is not None and tokens > 0 else None


def average_power_w(energy_j: float | None, seconds: float) -> float | None:
    return energy_j / seconds if energy_j is not None and seconds > 0 else None


def energy_source(chip: Device) -> str:
    """One line for `hardware show`: which model prices this chip's ops, and from what."""
    if chip.energy is not None:
        return f"per-op energies ({chip.energy.source})"
    if chip.power is not None:
        idle = f", idle {chip.power.idle:g} W" if chip.power.idle is not None else ", idle power unknown"
        return f"power model: TDP {chip.power.tdp:g} W{idle} ({chip.power.source})"
    return "unknown: the spec gives neither per-op energies nor power"

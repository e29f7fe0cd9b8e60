"""Where an MCU keeps an op's data, how a cluster tiles it through L1, and a network's peak SRAM.

- A cluster (a `scope: cluster` level: PULP's shared L1) computes only on L1. The op's operands live in the
  nearest larger level that holds them all (L2, else HyperRAM); the DMA moves them in tiles. A working set
  (operands + the im2col buffer) that fits L1 is one tile: load, then compute. A larger one is split into
  n = ⌈working set / (L1 / 2)⌉ tiles, double-buffered: time = d + (n − 1)·max(c, d) + c for per-tile DMA d
  and compute c (the first load fills the pipeline; each later load hides under the previous compute).
- A single-core MCU without a scratchpad (Cortex-M7) reads operands where they live: weights in its main
  memory (flash, read-only) when that differs from its first level, everything else in the first (SRAM).
- A network's peak SRAM: at each layer, the tensors still to be read by a later layer, plus the layer's
  inputs and output — an elementwise layer writes in place over an input that nothing later reads (operator
  fusion) — plus the weights when they live in SRAM too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfsim.cost.roofline import level_bandwidth
from perfsim.errors import PerfsimError
from perfsim.hardware import MemoryLevel
from perfsim.hardware.mcu import Mcu
from perfsim.models.network import NETWORK_INPUT, input_bytes, load_network, network_ops, output_bytes
from perfsim.ops import Elementwise, OpBase


def scratchpad(device: Mcu) -> MemoryLevel | None:
    """The cluster's shared L1, where its cores compute; None for an MCU without one."""
    return next((level for level in device.memory if level.scope == "cluster"), None)


def data_level(device: Mcu) -> MemoryLevel:
    """The level activations live in: the one after the scratchpad (PULP's L2), else the first (SRAM)."""
    pad = scratchpad(device)
    if pad is None:
        return device.memory[0]
    index = device.memory.index(pad)
    if index + 1 >= len(device.memory):
        raise PerfsimError(f"{device.name}: no memory level beyond the cluster's {pad.name}")
    return device.memory[index + 1]


def weight_level(device: Mcu) -> MemoryLevel:
    """Where weights live: the spec's `main_memory` (flash on a Cortex-M7) when set, else with the activations."""
    return device.main if device.main_memory is not None else data_level(device)


def placement(op: OpBase, device: Mcu) -> tuple[MemoryLevel, MemoryLevel]:
    """(level of `op`'s activations, level of its weights), per the module doc. Raise PerfsimError if they do
    not fit there."""
    activations = sum(o.bytes for o in op.operands() if not o.weight)
    weights = sum(o.bytes for o in op.operands() if o.weight)
    if scratchpad(device) is not None:
        start = device.memory.index(data_level(device))
        level = next((lv for lv in device.memory[start:] if lv.capacity >= activations + weights), None)
        if level is None:
            _too_big(op, device, device.memory[-1], activations + weights)
        return level, level  # type: ignore[return-value]
    data, weight = data_level(device), weight_level(device)
    need = {data.name: activations}
    need[weight.name] = need.get(weight.name, 0.0) + weights
    for name, size in need.items():
        if size > device.level(name).capacity:
            _too_big(op, device, device.level(name), size)
    return data, weight


def _too_big(op: OpBase, device: Mcu, level: MemoryLevel, size: float) -> None:
    raise PerfsimError(f"{op.label} needs {size / 2**10:.1f} KiB in {device.name}'s {level.name}, which holds "
                       f"{level.capacity / 2**10:.1f} KiB")


def traffic_bytes(op: OpBase, device: Mcu) -> dict[str, float]:
    """Bytes `op` moves from each level its operands live in (each operand's reads and writes)."""
    data, weight = placement(op, device)
    traffic: dict[str, float] = {}
    for operand in op.operands():
        name = (weight if operand.weight else data).name
        traffic[name] = traffic.get(name, 0.0) + operand.traffic
    return traffic


def tiles(op: OpBase, device: Mcu, layout_bytes: float) -> int:
    """How many L1 tiles the op's working set needs (1 when it fits L1 whole)."""
    pad = scratchpad(device)
    assert pad is not None
    working = sum(o.bytes for o in op.operands()) + layout_bytes
    return 1 if working <= pad.capacity else math.ceil(working / (pad.capacity / 2))


def memory_seconds(device: Mcu, traffic: dict[str, float]) -> dict[str, float]:
    """Seconds each level takes to serve its traffic at its sustained bandwidth."""
    return {name: moved / level_bandwidth(device, device.level(name)) for name, moved in traffic.items()}


def double_buffered(compute_s: float, dma_s: float, n: int) -> float:
    """Seconds of n double-buffered tiles: d + (n − 1)·max(c, d) + c, with c and d per tile."""
    c, d = compute_s / n, dma_s / n
    return d + (n - 1) * max(c, d) + c


@dataclass(frozen=True)
class SramFit:
    """A network's peak SRAM on a device: activations at the worst layer, resident weights, the level's size."""

    network: str
    level: str
    activations_bytes: float
    weights_bytes: float
    capacity_bytes: float
    peak_layer: str

    @property
    def peak_bytes(self) -> float:
        return self.activations_bytes + self.weights_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.capacity_bytes


def live_activations(network: str, dtype: str | None = None) -> list[tuple[str, float]]:
    """(layer, bytes of activations live while it runs) for each layer of `network` (module doc)."""
    spec = load_network(network)
    ops = network_ops(network, dtype)
    sizes = {NETWORK_INPUT: input_bytes(ops[0])} | {op.label: output_bytes(op) for op in ops}
    last_use = {NETWORK_INPUT: 0} | {op.label: i for i, op in enumerate(ops)}
    for i in range(len(ops)):
        for source in spec.sources(i):
            last_use[source] = max(last_use[source], i)
    rows = []
    for i, op in enumerate(ops):
        reads = spec.sources(i)
        live = sum(sizes[name] for name in sizes if _produced_before(name, i, ops) and last_use[name] >= i)
        in_place = isinstance(op, Elementwise) and any(last_use[r] == i and sizes[r] >= sizes[op.label]
                                                       for r in reads)
        rows.append((op.label, live + (0.0 if in_place else sizes[op.label])))
    return rows


def _produced_before(name: str, index: int, ops: tuple[OpBase, ...]) -> bool:
    return name == NETWORK_INPUT or any(op.label == name for op in ops[:index])


def peak_sram(network: str, device: Mcu, dtype: str | None = None) -> SramFit:
    """The peak SRAM `network` needs for inference in `dtype` on `device` (module doc), and whether it fits."""
    rows = live_activations(network, dtype)
    layer, activations = max(rows, key=lambda row: row[1])
    level = data_level(device)
    ops = network_ops(network, dtype)
    weights = sum(o.bytes for op in ops for o in op.operands() if o.weight)
    resident = weights if weight_level(device).name == level.name else 0.0
    return SramFit(network, level.name, activations, resident, level.capacity, layer)

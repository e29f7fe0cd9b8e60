"""GEMM kernels on an accelerator: output tiles in waves over the compute units, split-K, panel re-reads.

The mechanism (issue 14 item 2); the efficiency-vs-shape curve comes only from it:
- Tiles: C[batch, m, n] is cut into tm × tn output tiles, the shape the spec's `gemm_tiles` gives for the
  compute dtype: ⌈m/tm⌉·⌈n/tn⌉ per batch. Edge tiles are computed whole, and K runs in whole tk steps:
  padded work. For a GEMM with fewer rows than the spec's tile, the same tile cut to SMALL_TILE_M rows competes
  too (tile_family), as libraries pick short tiles for GEMMs with few rows.
- Split-K: each tile's K loop may be cut into s slices, one work unit each; the fp32 partial tiles are
  written and summed in the kernel (s·batch·m·n·4 bytes written and read back).
- Waves: the tiles·s units run ⌈units / cores⌉ waves, so compute_s = waves × one unit's FLOPs at one core's
  rate (chip rate / cores): the last partial wave idles cores. Memory streams at what the units busy on
  average can draw (ChipRates.memory_seconds).
- s is the one giving the op the least time, extra traffic counted, among a few candidates: every power of two
  up to the one past the split that just fills one wave, and the splits filling two and three waves most fully
  (split_candidates).
- Traffic: compulsory (each operand once), plus panel re-reads. A wave runs a block of tiles laid out
  near-square (threadblock swizzling), rows_w × cols_w with rows_w·cols_w ≥ the tiles in a wave, shaped to
  minimise the panel bytes it reads; each wave reads its rows_w A row-panels and cols_w B column-panels
  (tiles of one wave share them through L2). Reads beyond compulsory hit the nearest cache holding the whole
  operand (so operands that fit L2 cost main memory only their compulsory traffic), else main memory.
- GEMV kernel: for at most GEMV_MAX_ROWS rows a matrix-vector kernel on the vector units (no padding, weights
  streamed once, work spread over every core) competes; the faster kernel is used, as libraries pick one.
- Dequantisation (perfsim.cost.dequant) runs on the vector units: its own resource `dequant`, overlapped with
  the matrix units and the weight stream (the op takes the longest); where the MACs themselves run on the
  vector units (no matrix unit for the dtype, or the GEMV kernel) it adds to their compute time.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, sqrt

from perfsim.cost.dequant import EPILOGUE_OPS, dequant_ops, needs_dequant, quantised_activations
from perfsim.cost.derating import ChipRates, add, compulsory, rates
from perfsim.cost.opcost import OpCost
from perfsim.cost.roofline import Cache, place
from perfsim.dtypes import resolve_format
from perfsim.hardware import Device
from perfsim.hardware.accelerator import TileShape
from perfsim.ops import Gemm

DEFAULT_TILE = TileShape(m=128, n=128, k=32)
"""Used where a spec gives no gemm_tiles: a stated default, not any library's choice."""
GEMV_MAX_ROWS = 8
"""Rows up to which a matrix-vector kernel is considered (llama.cpp's Metal/CUDA mul_mv paths serve a few rows)."""
PARTIAL_BYTES = 4
"""fp32 partial sums of split-K."""
SMALL_TILE_M = 64
"""Rows of the short tile libraries ship beside their large-shape tiles: CUTLASS's SM80 tensor-op generator
(python/cutlass_library/generator.py, GenerateSM80_TensorOp_16816) lists 64 × 256, 64 × 128 and 64 × 64 tiles beside
its 128- and 256-row ones, and Hopper's wgmma computes 64 rows per warpgroup instruction (PTX m64nNk16)."""


@dataclass(frozen=True)
class Waves:
    """How a GEMM's work units fill the cores: tiles (batch included), K split `split` ways, in `waves` waves."""

    tiles_m: int
    tiles_n: int
    tiles: int
    k_steps: int
    split: int
    cores: int
    tile: TileShape

    @property
    def units(self) -> int:
        return self.tiles * self.split

    @property
    def waves(self) -> int:
        return ceil(self.units / self.cores)

    @property
    def unit_flops(self) -> float:
        """FLOPs of one work unit: a whole tile over ⌈K steps / split⌉ steps of tk."""
        return 2.0 * self.tile.m * self.tile.n * self.tile.k * ceil(self.k_steps / self.split)

    @property
    def padded_flops(self) -> float:
        """FLOPs the units do, edge-tile and K padding included."""
        return self.units * self.unit_flops

    @property
    def occupancy(self) -> float:
        """Mean fraction of cores busy over the waves."""
        return self.units / (self.waves * self.cores)


def gemm_waves(m: int, n: int, k: int, batch: int, tile: TileShape, n_cores: int, split: int = 1) -> Waves:
    """The wave structure of a batch of m × n × k GEMMs cut into `tile`s, K split `split` ways, on `n_cores`."""
    tiles_m, tiles_n = ceil(m / tile.m), ceil(n / tile.n)
    return Waves(tiles_m, tiles_n, batch * tiles_m * tiles_n, ceil(k / tile.k), split, n_cores, tile)


def split_candidates(units: int, n_cores: int, most: int) -> list[int]:
    """Splits worth trying for `units` work units on `n_cores`, each capped at `most` (K steps, KV tiles): the
    powers of two 1, 2, … up to 2p, p the split that just fills one wave (units·p ≤ cores < units·2p), so that one
    more tile row never takes away a split a smaller GEMM had (a smaller split reads less partial-sum traffic); and the
    largest splits that fit within two and three waves (⌊2·cores / units⌋, ⌊3·cores / units⌋), which leave the
    fewest cores idle in the last wave, as stream-K / split-K heuristics aim to."""
    powers = [1, 2]
    while units * powers[-1] <= n_cores:
        powers.append(2 * powers[-1])
    balanced = (waves * n_cores // units for waves in (2, 3))
    return sorted({min(s, max(1, most)) for s in (*powers, *balanced) if s >= 1})


def tile_for(device: Device, dtype: str) -> TileShape:
    """The spec's tile for `dtype`, else its first listed tile, else DEFAULT_TILE."""
    tiles = getattr(device, "gemm_tiles", None)
    if tiles is None:
        return DEFAULT_TILE
    return tiles.shapes.get(dtype) or next(iter(tiles.shapes.values()))


def tile_family(device: Device, dtype: str, rows: int) -> list[TileShape]:
    """The tiles a library chooses among for `rows`-row GEMMs in `dtype`: the spec's tile and, for at most as many
    rows as it has, the same tile cut to SMALL_TILE_M rows. Large GEMMs keep the spec's tile, the one their compute
    calibration was measured with; a spec without gemm_tiles keeps DEFAULT_TILE alone."""
    tile = tile_for(device, dtype)
    library = getattr(device, "gemm_tiles", None) is not None  # DEFAULT_TILE stands for no library's family
    short = library and tile.m > SMALL_TILE_M and rows <= tile.m
    return [tile, tile.model_copy(update={"m": SMALL_TILE_M})] if short else [tile]


def wave_block(w: Waves, a_panel: float, b_panel: float) -> tuple[int, int]:
    """(rows_w, cols_w): the near-square block of tiles one wave covers, minimising rows_w·a_panel + cols_w·b_panel.

    With rows·cols = P tiles per wave the optimum is rows = √(P·b_panel / a_panel); clamped to the grid.
    """
    per_wave = max(1, w.cores // w.split)
    rows = min(w.tiles_m, max(1, round(sqrt(per_wave * b_panel / a_panel))))
    cols = min(w.tiles_n, ceil(per_wave / rows))
    return min(w.tiles_m, ceil(per_wave / cols)), cols


def gemm_cost(op: Gemm, device: Device, cache: Cache = "cold") -> OpCost:
    """The cheapest of the tiled kernels (each tile of the family at its best split-K) and, for a few rows, the GEMV
    kernel."""
    chip = rates(device)
    m, batch = (op.m * op.batch, 1) if op.weight_shared else (op.m, op.batch)
    used, rate = chip.compute("matrix", op.compute_dtype)
    operands = op.operands()
    base = compulsory(operands, device, cache)
    dequant = Dequant.of(op, used)
    best: tuple[float, dict[str, float], dict[str, float]] | None = None
    for tile in tile_family(device, used, m):
        tiles = batch * ceil(m / tile.m) * ceil(op.n / tile.n)
        for w in _undominated(gemm_waves(m, op.n, op.k, batch, tile, chip.cores, split)
                              for split in split_candidates(tiles, chip.cores, ceil(op.k / tile.k))):
            resource, traffic = tiled_resources(op, chip, w, used, rate, operands, base, dequant)
            seconds = max(resource.values())
            if best is None or seconds < best[0]:
                best = (seconds, resource, traffic)
    if m <= GEMV_MAX_ROWS:
        resource = _gemv(op, chip, base, place(operands[0], device, cache).name, operands[0].traffic)
        if max(resource.values()) <= best[0]:  # a tie goes to the GEMV kernel (no partial sums)
            best = (0.0, resource, base)
    return OpCost(op.label, op.flops, sum(best[2].values()), best[1], best[2], chip.launch_s)


def _undominated(candidates) -> list[Waves]:
    """The splits worth costing: a larger split that neither shortens the compute (waves × unit FLOPs) nor
    raises the occupancy of a smaller one only adds partial-sum traffic, so it is dropped."""
    kept: list[Waves] = []
    for w in candidates:  # ascending split
        if not any(k.waves * k.unit_flops <= w.waves * w.unit_flops and k.occupancy >= w.occupancy for k in kept):
            kept.append(w)
    return kept


@dataclass(frozen=True)
class Dequant:
    """Element operations of a GEMM's dequantisation: `per_weight_pass` each time the weights are dequantised
    (once per tile row, or once in a GEMV), `per_activation_pass` each time activations are converted (once per
    tile column) and `epilogue` to rescale quantised outputs once."""

    per_weight_pass: float
    per_activation_pass: float
    epilogue: float

    @classmethod
    def of(cls, op: Gemm, used: str) -> Dequant:
        weights = op.weight_dtype or op.dtype
        per_weight = op.k * op.n * dequant_ops(weights) if needs_dequant(weights, used) else 0.0
        converts = resolve_format(op.dtype).name != used
        per_activation = op.batch * op.m * op.k * dequant_ops(op.dtype) if converts else 0.0
        epilogue = op.batch * op.m * op.n * EPILOGUE_OPS if not converts and quantised_activations(op.dtype) else 0.0
        return cls(per_weight, per_activation, epilogue)

    def elements(self, weight_passes: int, activation_passes: int) -> float:
        return self.per_weight_pass * weight_passes + self.per_activation_pass * activation_passes + self.epilogue


def tiled_resources(op: Gemm, chip: ChipRates, w: Waves, used: str, rate: float, operands: list, base: dict[str, float],
           dequant: Dequant) -> tuple[dict[str, float], dict[str, float]]:
    """(resource seconds, bytes per level) of the tiled kernel with the wave structure `w`."""
    a, b, _ = operands
    traffic = dict(base)
    rows = w.tiles // w.tiles_n
    b_copies = 1 if op.weight_shared else op.batch
    rows_w, cols_w = wave_block(w, a.bytes / rows, b.bytes / (w.tiles_n * b_copies))
    tile_waves = ceil(w.tiles / max(1, w.cores // w.split))
    a_reads = min(max(tile_waves * rows_w / rows, 1.0), w.tiles_n)
    b_reads = min(max(tile_waves * cols_w / (w.tiles_n * b_copies), 1.0), w.tiles_m)
    add(traffic, chip.holding(a.bytes), (a_reads - 1) * a.bytes)
    add(traffic, chip.holding(b.bytes), (b_reads - 1) * b.bytes)
    if w.split > 1:
        partials = w.split * op.batch * op.m * op.n * PARTIAL_BYTES
        add(traffic, chip.holding(partials), 2 * partials)
    units, waves = w.units, w.waves
    occupancy = units / (waves * w.cores)
    compute = waves * w.unit_flops / (rate / w.cores)
    elements = dequant.elements(rows, w.tiles_n)
    dequant_s = elements / (chip.element_ops(op.compute_dtype) * occupancy) if elements else 0.0
    resource = chip.memory_seconds(traffic, occupancy)
    if chip.has_matrix_unit(used):
        resource[f"compute:{used}"] = compute
        if dequant_s:
            resource["dequant"] = dequant_s
    else:  # the MACs run on the vector units too: dequantisation shares them
        resource[f"compute:{used}"] = compute + dequant_s
    return resource, traffic


def _gemv(op: Gemm, chip: ChipRates, base: dict[str, float], x_level: str, x_bytes: float) -> dict[str, float]:
    """Resource seconds of the matrix-vector kernel: MACs and dequantisation on the vector units, one after the
    other; weights streamed once, concurrently, one unit per output column (at most every unit). Where the spec
    measures a unit's draw (calibration.core_bandwidth: its load path, whichever level serves it), each busy unit
    also takes in its whole input vector (`x_bytes` in all at `x_level`, one vector per GEMV of the batch) beside
    its share of the rest through that draw, so a wider GEMV never streams faster. The default 1/cores share is no
    port limit (re-reads of the vector hit caches at far more), so it sets no such floor."""
    used, rate = chip.compute("vector", op.compute_dtype)
    active = min(chip.cores, op.n * op.batch)
    occupancy = active / chip.cores
    dequant = Dequant.of(op, used).elements(1 if op.weight_shared else op.batch, 1)
    resource = chip.memory_seconds(base, occupancy)
    own_x = x_bytes if op.weight_shared else x_bytes / op.batch
    measured = chip.device.calibration.core_bandwidth
    for level, moved in base.items():
        if level in measured:
            x, shared = (own_x, x_bytes) if level == x_level else (0.0, 0.0)
            floor = (x + (moved - shared) / active) / chip.unit_bandwidth[level]
            resource[f"memory:{level}"] = max(resource[f"memory:{level}"], floor)
    resource[f"compute:{used}"] = op.flops / rate + dequant / (chip.element_ops(op.compute_dtype) * occupancy)
    return resource



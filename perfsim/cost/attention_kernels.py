"""Attention kernels on an accelerator: FlashAttention-style prefill and split-KV (flash-decoding) decode.

Prefill (issue 14 item 3). A work unit is one query tile (Br rows) of one (sequence, head). It walks the
key/value tiles (Bc keys each) it needs: all ⌈kv_len/Bc⌉, or under causal masking those up to its last
query's position — fully masked tiles are skipped, partly masked ones computed whole. Per visited tile:
QKᵀ and PV on the matrix units (2·2·Br·Bc·d FLOP, tile padded) and the online softmax on the vector units
(SOFTMAX_OPS element operations per score: max, subtract, sum, rescale; plus one exp, on the special-function
units where the spec gives them). Within a unit they run one after the other (FlashAttention-2 issues the
softmax between its two MMAs; FlashAttention-3 overlaps them, which this does not credit).
Units run in waves over the cores: compute_s = max(⌈units / cores⌉ × mean unit time, longest unit time).
Traffic: Q read and O written once; each unit reads the K and V tiles it visits (K/V re-read per query
tile); reads beyond the compulsory K and V hit the nearest cache holding the K/V of the heads one wave
works on (units are ordered query tile fastest, so a wave spans ⌈cores / query tiles⌉ + 1 query heads and
their KV heads), else main memory.

Decode (q_len × group ≤ Br). The query rows of one KV head — q_len positions × the group's query heads
(GQA) — are packed into one Br-row tile, so one read of K and V serves the whole group. The sequence is
split into s chunks of whole KV tiles (flash-decoding): batch × kv_heads × s units, so small batches still
fill the cores. s is the split taking least time of every split up to the KV tiles and three waves of units
(FlashAttention's num_splits heuristic weighs the same); every unit waits for the longest chunk, each chunk
reads the group's query rows and writes its partial results (fp32 O and log-sum-exp per row). A combine
kernel then runs after it (opcost.in_sequence), one more launch: it reads the partials back and writes O, one
unit per query row of a head over min(rows, cores) cores. (Unsplit, the kernel writes O itself.)

Tiles. The spec's attention_tiles, else DEFAULT_TILES for a dtype its matrix units run; a dtype they do not run
(fp32 on a GPU without TF32 in its spec) runs on the vector units in the tiles of PyTorch's memory-efficient
(CUTLASS) kernel, the fused kernel PyTorch's SDPA picks for fp32, which FlashAttention does not support
(VECTOR_TILES).

Unfused (unfused_cost): what eager PyTorch runs, three kernels one after another (opcost.in_sequence), each with its
own launch: S = Q·Kᵀ and O = P·V as batched GEMMs (gemm_tiles.gemm_cost: tiles, waves, split-K, per-unit bandwidth),
the query rows of a GQA group stacked over their shared KV head (batch × kv_heads GEMMs of group × q_len rows; MHA:
batch × heads of q_len rows), and a row softmax over S between them on the vector units (SOFTMAX_OPS element
operations and one exp per score, over min(rows, cores) cores). The kernels compute every score, masked ones
included (a causal mask is applied to the whole S), so their time counts all q_len × kv_len pairs while the op's
FLOPs stay its algorithmic count. S is written by the first GEMM and read by the softmax, which writes P, read by
the second GEMM: at the nearest cache holding S whole (ChipRates.holding), else main memory; Q, K, V and O move
where the GEMMs place them.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from math import ceil

from perfsim.cost.derating import ChipRates, add, compulsory, rates
from perfsim.cost.gemm_tiles import gemm_cost
from perfsim.cost.opcost import OpCost, in_sequence
from perfsim.cost.roofline import Cache, place
from perfsim.dtypes import resolve_format
from perfsim.hardware import Device
from perfsim.ops import Attention, Gemm, Operand

DEFAULT_TILES = (128, 128)
"""(Br, Bc) where a spec gives no attention_tiles: a stated default."""
SOFTMAX_OPS = 4
"""Element operations per score of the online softmax besides its exp: running max, subtract, sum, rescale."""
VECTOR_TILES = ((64, (64, 64)), (128, (64, 128)), (None, (32, 128)))
"""(largest head_dim, (Br, Bc)) of PyTorch's memory-efficient attention kernels in fp32 for sm80 and later
(pytorch/pytorch aten/src/ATen/native/transformers/cuda/mem_eff_attention/kernels/cutlassF.h,
dispatch_cutlassF_f32_sm80: AttentionKernel<float, Sm80, true, kQueriesPerBlock, kKeysPerBlock, kMaxK> is
64 × 64 up to kMaxK 64, 64 × 128 up to 128, 32 × 128 beyond); the first that holds head_dim runs."""
PARTIAL_BYTES = 4


def attention_tiles(device: Device, op: Attention) -> tuple[int, int]:
    """(Br, Bc): the spec's attention_tiles, else DEFAULT_TILES where a matrix unit runs the op's dtype, else the
    vector-unit kernel's VECTOR_TILES for its head_dim."""
    tiles = getattr(device, "attention_tiles", None)
    if tiles:
        return tiles.q, tiles.kv
    chip = rates(device)
    if chip.has_matrix_unit(chip.compute("matrix", op.compute_dtype)[0]):
        return DEFAULT_TILES
    return next(shape for most, shape in VECTOR_TILES if most is None or op.head_dim <= most)


@lru_cache(maxsize=4096)
def query_tile_visits(q_len: int, kv_len: int, br: int, bc: int, causal: bool) -> tuple[int, int, int]:
    """(KV tiles visited summed over the query tiles, the most one query tile visits, keys read summed).

    Causal: the queries are the last q_len of kv_len positions; query tile i ends at position
    kv_len − q_len + min((i+1)·Br, q_len) and visits ⌈that / Bc⌉ tiles.
    """
    kv_tiles, offset = ceil(kv_len / bc), kv_len - q_len
    total = longest = keys = 0
    for start in range(0, q_len, br):
        visits = min(kv_tiles, ceil((offset + min(start + br, q_len)) / bc)) if causal else kv_tiles
        total, longest, keys = total + visits, max(longest, visits), keys + min(kv_len, visits * bc)
    return total, longest, keys


def is_decode(op: Attention, device: Device) -> bool:
    """True when the query rows of one KV head fit one query tile (the flash-decoding kernel runs)."""
    return op.q_len * (op.heads // op.groups_divisor) <= attention_tiles(device, op)[0]


def attention_cost(op: Attention, device: Device, cache: Cache = "cold") -> OpCost:
    """The fused attention kernel's cost: decode (split-KV) when the packed query rows fit a tile, else prefill."""
    return decode_plan(op, device, cache)[1] if is_decode(op, device) else _prefill(op, device, cache)


def _tile_seconds(op: Attention, device: Device, rows: int) -> tuple[str, float]:
    """(dtype used, seconds one core spends on one Br × Bc tile with `rows` real query rows)."""
    br, bc = attention_tiles(device, op)
    chip = rates(device)
    used, matrix = chip.compute("matrix", op.compute_dtype)
    per_core_ops = chip.element_ops("fp32") / chip.cores
    matmul = 2 * 2.0 * br * bc * op.head_dim / (matrix / chip.cores)
    softmax = rows * bc * (SOFTMAX_OPS / per_core_ops + 1 / (chip.exp_rate() / chip.cores))
    return used, matmul + softmax


def _prefill(op: Attention, device: Device, cache: Cache) -> OpCost:
    chip = rates(device)
    br, bc = attention_tiles(device, op)
    total, longest, keys = query_tile_visits(op.q_len, op.kv_len, br, bc, op.causal)
    q_tiles, n = ceil(op.q_len / br), chip.cores
    units = op.batch * op.heads * q_tiles
    waves = ceil(units / n)
    used, tile_s = _tile_seconds(op, device, br)
    compute = max(waves * total / q_tiles, longest) * tile_s
    traffic = compulsory(op.operands(), device, cache)
    row_bytes = op.head_dim * resolve_format(op.kv_dtype or op.dtype).bits_per_element / 8
    kv_read = 2 * op.batch * op.heads * keys * row_bytes
    kv_compulsory = 2 * op.batch * op.groups_divisor * op.kv_len * row_bytes
    group = op.heads // op.groups_divisor
    heads_in_wave = min(op.batch * op.heads, ceil(n / q_tiles) + 1)
    kv_in_wave = min(op.batch * op.groups_divisor, ceil(heads_in_wave / group) + 1)
    add(traffic, chip.holding(2 * kv_in_wave * op.kv_len * row_bytes), kv_read - kv_compulsory)
    resource = {f"compute:{used}": compute, **chip.memory_seconds(traffic, units / (waves * n))}
    return OpCost(op.label, op.flops, sum(traffic.values()), resource, traffic, chip.launch_s)


def _partials(op: Attention, split: int) -> float:
    """Bytes of the `split` chunks' fp32 partial O and log-sum-exp, per query row of every head."""
    return split * op.batch * op.heads * op.q_len * (op.head_dim + 1) * PARTIAL_BYTES


def _combine(op: Attention, chip: ChipRates, split: int, outputs: dict[str, float]) -> OpCost:
    """The combine kernel after `split` chunks: reads their partials back and writes O (`outputs`), one unit per
    query row of a head, over min(rows, cores) cores."""
    traffic = dict(outputs)
    add(traffic, chip.holding(_partials(op, split)), _partials(op, split))
    occupancy = min(1.0, op.batch * op.heads * op.q_len / chip.cores)
    return OpCost("combine", 0.0, sum(traffic.values()), chip.memory_seconds(traffic, occupancy), traffic)


def decode_plan(op: Attention, device: Device, cache: Cache = "cold") -> tuple[int, OpCost]:
    """(splits of the KV sequence, cost) of the flash-decoding kernel with the split that takes least time."""
    chip = rates(device)
    bc, n = attention_tiles(device, op)[1], chip.cores
    kv_tiles, rows = ceil(op.kv_len / bc), op.q_len * (op.heads // op.groups_divisor)
    used, tile_s = _tile_seconds(op, device, rows)
    operands = op.operands()
    reads = compulsory([o for o in operands if o.name != "o"], device, cache)
    outputs = compulsory([o for o in operands if o.name == "o"], device, cache)
    kv_stream = compulsory([o for o in operands if o.name in ("k", "v")], device, cache)
    queries = compulsory([o for o in operands if o.name == "q"], device, cache)
    best = None
    for split in range(1, min(kv_tiles, max(1, 3 * n // (op.batch * op.groups_divisor))) + 1):
        units = op.batch * op.groups_divisor * split
        waves = ceil(units / n)
        chunk = ceil(kv_tiles / split)  # KV tiles of the longest chunk (FlashAttention splits whole tiles)
        # every unit streams at the pace of the longest chunk: the KV stream takes as long as if all were that long
        pace = split * min(op.kv_len, chunk * bc) / op.kv_len
        compute, occupancy = waves * chunk * tile_s, units / (waves * n)
        traffic = dict(reads)
        for level, moved in queries.items():
            add(traffic, level, (split - 1) * moved)  # every chunk's unit reads the group's query rows
        if split == 1:
            after = []
            for level, moved in outputs.items():
                add(traffic, level, moved)
        else:  # each chunk writes its partials; the combine kernel reads them back and writes O
            add(traffic, chip.holding(_partials(op, split)), _partials(op, split))
            after = [_combine(op, chip, split, outputs)]
        paced = {level: moved + kv_stream.get(level, 0.0) * (pace - 1) for level, moved in traffic.items()}
        resource = {f"compute:{used}": compute, **chip.memory_seconds(paced, occupancy)}
        kernel = OpCost(op.label, op.flops, sum(traffic.values()), resource, traffic)
        cost = in_sequence(op.label, op.flops, [kernel, *after], (1 + len(after)) * chip.launch_s)
        if best is None or cost.time_s < best[1].time_s:
            best = (split, cost)
    assert best is not None  # the range holds split 1 at least
    return best


def unfused_cost(op: Attention, device: Device, cache: Cache = "cold") -> OpCost:
    """Unfused attention as its three kernels, one after another, one launch each (module doc): `detail` names the
    kernel taking longest and what binds it."""
    chip = rates(device)
    group = op.heads // op.groups_divisor
    rows, gemms = group * op.q_len, op.batch * op.groups_divisor
    kv = op.kv_dtype or op.dtype
    scores = gemms * rows * op.kv_len * resolve_format(op.dtype).bits_per_element / 8  # S, and P as large
    here, there = chip.holding(scores), place(Operand("s", scores), device, cache).name
    qk = gemm_cost(Gemm(name="qk", m=rows, n=op.kv_len, k=op.head_dim, batch=gemms, dtype=op.dtype,
                        weight_dtype=kv), device, cache)
    pv = gemm_cost(Gemm(name="pv", m=rows, n=op.head_dim, k=op.kv_len, batch=gemms, dtype=op.dtype,
                        weight_dtype=kv), device, cache)
    kernels = {"qk": _moved(qk, chip, scores, there, here),
               "softmax": _softmax(chip, scores, here, gemms * rows * op.kv_len, gemms * rows),
               "pv": _moved(pv, chip, scores, there, here)}
    slowest = max(kernels, key=lambda name: kernels[name].busiest[1])
    detail = {"kernels": ", ".join(kernels), "slowest_kernel": f"{slowest} ({kernels[slowest].busiest[0]})"}
    return in_sequence(op.label, op.flops, kernels.values(), len(kernels) * chip.launch_s, detail)


def _softmax(chip: ChipRates, scores: float, level: str, elements: float, rows: float) -> OpCost:
    """The row softmax kernel: reads S (`scores` bytes) and writes P as large at `level`; per score SOFTMAX_OPS
    element operations and one exp, one row per unit over min(rows, cores) cores."""
    traffic = {level: 2 * scores}
    occupancy = min(1.0, rows / chip.cores)
    resource = chip.memory_seconds(traffic, occupancy)
    used = chip.compute("vector", "fp32")[0]
    resource[f"compute:{used}"] = elements * (SOFTMAX_OPS / chip.element_ops("fp32") + 1 / chip.exp_rate()) / occupancy
    return OpCost("softmax", elements * (SOFTMAX_OPS + 1), 2 * scores, resource, traffic)


def _moved(cost: OpCost, chip: ChipRates, nbytes: float, source: str, target: str) -> OpCost:
    """`cost` with `nbytes` of its traffic served by `target` instead of `source`, every level streaming at the rate
    the kernel drew from it. A `target` it did not use streams at what its busy units draw, their count implied by
    the `source` stream (bytes/s drawn ÷ one unit's bandwidth; every unit where `source` ran at its full bandwidth,
    which gemm_cost's result does not tell apart)."""
    if source == target:
        return cost
    drawn = {level: moved / cost.resource_s[f"memory:{level}"] for level, moved in cost.bytes_per_level.items()}
    if target not in drawn:
        full = drawn[source] >= chip.bandwidth[source] * (1 - 1e-9)
        busy = chip.cores if full else drawn[source] / chip.unit_bandwidth[source]
        drawn[target] = min(chip.bandwidth[target], busy * chip.unit_bandwidth[target])
    traffic = dict(cost.bytes_per_level)
    traffic[source] -= nbytes
    add(traffic, target, nbytes)
    resource = {name: s for name, s in cost.resource_s.items() if not name.startswith("memory:")}
    resource.update({f"memory:{level}": moved / drawn[level] for level, moved in traffic.items() if moved > 0})
    return replace(cost, bytes=sum(traffic.values()), resource_s=resource,
                   bytes_per_level={level: moved for level, moved in traffic.items() if moved > 0})

"""An MoE layer on an accelerator as the kernels its serving engines launch, one after another.

vLLM's fused_moe path (vllm/model_executor/layers/fused_moe/fused_moe.py, fused_experts_impl) runs: the router's
gate GEMM, topk_softmax, moe_align_block_size (rows sorted by expert, each expert padded to BLOCK_SIZE_M),
fused_moe_kernel on w13, silu_and_mul, fused_moe_kernel on w2, moe_sum. vLLM-Ascend (MindIE / torch_npu) runs the
same sequence as npu_moe_gating_top_k, npu_moe_init_routing_v2, npu_grouped_matmul, npu_swiglu,
npu_grouped_matmul, npu_moe_finalize_routing (vllm_ascend/ops/fused_moe/moe_comm_method.py, device/device_op.py).
So an MoE op here is seven kernels, on this chip's share (ep, expert_tp) of the layer:

- router: the gate GEMM, rows = tokens / shards, N = experts, K = hidden, priced by gemm_tiles.gemm_cost;
- topk_softmax (vector units): per logit SOFTMAX_OPS element operations and one exp, plus top_k selection
  passes (one compare each); reads the logits, writes top_k fp32 weights and int32 ids per token;
- permute (init-routing): gathers the P token-expert rows the chip computes: reads P / top_k × hidden, writes
  P × hidden (vLLM's Triton kernel gathers inside the GEMM's A loads instead; the bytes are the same order);
- up and down: one grouped GEMM kernel each (w13: N = 2·expert_ffn / expert_tp when gated; w2: K of it). Its
  tiles are the union of the touched local experts' tiles: each expert's M is its routed rows, padded to whole
  tiles, so small per-expert M wastes tile work; the tiles run in waves over the cores with gemm_tiles' wave,
  panel re-read and dequantisation machinery (gemm_tiles.tiled_resources), without split-K (fused_moe_kernel
  and GroupedMatmul run SPLIT_K = 1). Weights: only the experts that receive rows are read, each whole: the
  busiest chip's local experts with rows (below);
- activation (vector units): SiLU·mul (gated) or the activation alone, on the P rows;
- combine (finalize-routing / moe_sum): reads P × hidden and P fp32 weights, one multiply-add per element,
  writes P / top_k × hidden.
Shared experts, where the op carries them, run as a dense up GEMM, activation and down GEMM (vLLM's shared MLP).

Rows on the busiest chip: P = ⌈tokens · top_k / ep · imbalance⌉ pairs over ⌈experts touched / ep⌉ local experts,
spread as evenly as whole rows allow. On one chip (no EP) the touched experts are a random count with a fractional
mean x: the grouped GEMMs are priced at ⌊x⌋ and ⌈x⌉ experts and weighted to that mean (Routing.bracket).
Tile shape: each grouped GEMM takes the fastest of vLLM's two default
fused_moe configs (get_default_config: 16 × 32 × 64 when the tokens are at most the experts, else 64 × 64 × 32;
the one for its token count first, so it wins ties) and the spec's gemm_tiles for the compute dtype, where the
spec gives them — as an engine's tuned config tables pick small tiles where few rows per expert would leave the
cores idle, and gemm_tiles picks between its own kernels.

The kernels do not overlap one another: the op takes the sum of their times (opcost.in_sequence), plus one
launch each (overhead_s = kernels × launch_s, which a CUDA-graph capture rescales per launch); `detail` names
the kernel that takes longest and what binds it. `flops` is the op's algorithmic count; tile padding shows only as time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil

from perfsim.cost.attention_kernels import SOFTMAX_OPS
from perfsim.cost.derating import ChipRates, compulsory, rates
from perfsim.cost.gemm_tiles import Dequant, Waves, gemm_cost, tile_for, tiled_resources
from perfsim.cost.opcost import OpCost, in_sequence
from perfsim.cost.roofline import Cache
from perfsim.dtypes import resolve_format
from perfsim.hardware import Device
from perfsim.hardware.accelerator import TileShape
from perfsim.ops import ACTIVATION_FLOPS, Gemm, MoE, Operand

VLLM_SMALL_TILE = TileShape(m=16, n=32, k=64)
"""vLLM get_default_config for M ≤ E (tokens at most experts): BLOCK_SIZE_M/N/K = 16/32/64."""
VLLM_TILE = TileShape(m=64, n=64, k=32)
"""vLLM get_default_config otherwise: BLOCK_SIZE_M/N/K = 64/64/32."""
TOPK_BYTES = 4 + 4
"""Per chosen expert per token: an fp32 routing weight and an int32 expert id (fused_topk's outputs)."""


def moe_cost(op: MoE, device: Device, cache: Cache = "cold") -> OpCost:
    """The MoE op as its kernels on accelerator `device`, one after another (module doc)."""
    chip = rates(device)
    kernels = kernel_costs(op, device, chip, cache)
    slowest = max(kernels, key=lambda k: kernels[k].busiest[1])
    detail = {"kernels": ", ".join(kernels), "slowest_kernel": f"{slowest} ({kernels[slowest].busiest[0]})",
              "expert_tiles": f"up {kernels['up'].detail['tile']}, down {kernels['down'].detail['tile']}"}
    return in_sequence(op.label, op.flops, kernels.values(), len(kernels) * chip.launch_s, detail)


def kernel_costs(op: MoE, device: Device, chip: ChipRates, cache: Cache) -> dict[str, OpCost]:
    """Each kernel's cost, its launch left out (the op counts one launch per kernel)."""
    routing = Routing.of(op)
    ffn = ceil(op.expert_ffn / op.expert_tp)
    up_width = (2 if op.gated else 1) * ffn
    tokens = ceil(op.tokens / op.shards)
    x = _bytes(op.dtype)
    kernels = {
        "router": gemm_cost(Gemm(name="router", m=tokens, n=op.experts, k=op.hidden, dtype=op.dtype), device, cache),
        "topk_softmax": _vector(chip, device, cache, tokens * op.experts * (SOFTMAX_OPS + op.top_k),
                                tokens * op.experts, tokens * op.experts * x, tokens * op.top_k * TOPK_BYTES),
        "permute": _vector(chip, device, cache, 0.0, 0.0, routing.pairs / op.top_k * op.hidden * x,
                           routing.pairs * op.hidden * x),
        "up": _grouped(op, device, chip, cache, op.hidden, up_width),
        "activation": _activation(op, chip, device, cache, routing.pairs, ffn),
        "down": _grouped(op, device, chip, cache, ffn, op.hidden),
        "combine": _vector(chip, device, cache, routing.pairs * op.hidden, 0.0,
                           routing.pairs * (op.hidden * x + 4), routing.pairs / op.top_k * op.hidden * x),
    }
    if op.shared_experts:
        width = ceil(op.shared_experts * (op.shared_ffn or op.expert_ffn) / op.shards)
        dense = {"dtype": op.dtype, "weight_dtype": op.weight_dtype}
        kernels["shared_up"] = gemm_cost(Gemm(name="shared_up", m=op.tokens, k=op.hidden,
                                              n=(2 if op.gated else 1) * width, **dense), device, cache)
        kernels["shared_activation"] = _activation(op, chip, device, cache, op.tokens, width)
        kernels["shared_down"] = gemm_cost(Gemm(name="shared_down", m=op.tokens, k=width, n=op.hidden, **dense),
                                           device, cache)
    return {name: replace(cost, overhead_s=0.0) for name, cost in kernels.items()}


@dataclass(frozen=True)
class Routing:
    """The busiest chip's routed rows: `pairs` token-expert rows over `experts` local experts that get any."""

    pairs: int
    experts: int

    @classmethod
    def of(cls, op: MoE, experts: int | None = None) -> Routing:
        """`experts` local experts with rows, else ⌈experts touched / ep⌉ (the busiest chip's)."""
        pairs = ceil(op.tokens * op.top_k / op.ep * op.imbalance)
        local = experts if experts is not None else ceil(op.experts_touched / op.ep)
        return cls(pairs, min(op.experts // op.ep, pairs, max(1, local)))

    @classmethod
    def bracket(cls, op: MoE) -> list[tuple[float, Routing]]:
        """(weight, routing) pairs whose weighted mean is the chip's expected routing. On one chip the touched
        experts are a random count with mean x = experts_touched: ⌊x⌋ and ⌈x⌉ weighted to that mean. Under EP
        the busiest chip takes the ceiling of its share."""
        x = op.experts_touched
        if op.ep > 1 or x == int(x) or x < 1:
            return [(1.0, cls.of(op))]
        low, f = int(x), x - int(x)
        return [(1 - f, cls.of(op, low)), (f, cls.of(op, low + 1))]

    def row_tiles(self, tile_m: int) -> int:
        """Σ over the experts of ⌈rows / tile_m⌉, the rows spread evenly: pairs mod experts get one more."""
        rows, extra = divmod(self.pairs, self.experts)
        return extra * ceil((rows + 1) / tile_m) + (self.experts - extra) * ceil(rows / tile_m)


def _grouped_tiles(op: MoE, device: Device, chip: ChipRates) -> list[TileShape]:
    """The grouped GEMM's candidate tiles: vLLM's default fused_moe config for this many tokens first, its other
    default, and the spec's tile for the compute dtype where the spec gives one."""
    small = op.tokens <= op.experts // op.ep
    tiles = [VLLM_SMALL_TILE, VLLM_TILE] if small else [VLLM_TILE, VLLM_SMALL_TILE]
    if getattr(device, "gemm_tiles", None) is not None:
        tiles.append(tile_for(device, chip.compute("matrix", op.compute_dtype)[0]))
    return tiles


def _grouped(op: MoE, device: Device, chip: ChipRates, cache: Cache, k: int, n: int) -> OpCost:
    """One grouped GEMM kernel on the fastest of its candidate tiles (`detail["tile"]` names it), its expected cost
    over the routings of Routing.bracket."""
    costs = [(weight, min((_grouped_on(op, device, chip, cache, routing, k, n, tile)
                           for tile in _grouped_tiles(op, device, chip)), key=lambda cost: cost.time_s))
             for weight, routing in Routing.bracket(op)]
    return costs[0][1] if len(costs) == 1 else _expected(costs)


def _expected(costs: list[tuple[float, OpCost]]) -> OpCost:
    """The weighted mean of one kernel's costs: each resource's seconds and each level's bytes."""
    def mean(field: str) -> dict[str, float]:
        keys = {key for _, cost in costs for key in getattr(cost, field)}
        return {key: sum(w * getattr(cost, field).get(key, 0.0) for w, cost in costs) for key in keys}

    heaviest = max(costs, key=lambda pair: pair[0])[1]
    traffic = mean("bytes_per_level")
    return OpCost(heaviest.op, sum(w * cost.flops for w, cost in costs), sum(traffic.values()), mean("resource_s"),
                  traffic, detail=heaviest.detail)


def _grouped_on(op: MoE, device: Device, chip: ChipRates, cache: Cache, routing: Routing, k: int, n: int,
                tile: TileShape) -> OpCost:
    """The grouped GEMM on `tile`: the experts' row tiles × ⌈n / tn⌉ tiles in waves, K in whole tk steps."""
    used, rate = chip.compute("matrix", op.compute_dtype)
    rows = routing.row_tiles(tile.m)
    tiles_n = ceil(n / tile.n)
    w = Waves(ceil(ceil(routing.pairs / routing.experts) / tile.m), tiles_n, rows * tiles_n, ceil(k / tile.k), 1,
              chip.cores, tile)
    # as a batched GEMM of the experts' problems: weights per expert, dequantised per tile row
    batched = Gemm(m=ceil(routing.pairs / routing.experts), n=n, k=k, batch=routing.experts, dtype=op.dtype,
                   weight_dtype=op.weight_dtype)
    weights = op.weight_dtype or op.dtype
    operands = [Operand("x", routing.pairs * k * _bytes(op.dtype)),
                Operand("w", routing.experts * k * n * _bytes(weights), weight=True),
                Operand("y", routing.pairs * n * _bytes(op.dtype), reads=0, writes=1)]
    base = compulsory(operands, device, cache)
    resource, traffic = tiled_resources(batched, chip, w, used, rate, operands, base, Dequant.of(batched, used))
    return OpCost("grouped_gemm", 2.0 * routing.pairs * k * n, sum(traffic.values()), resource, traffic,
                  detail={"tile": _tile_text(tile)})


def _activation(op: MoE, chip: ChipRates, device: Device, cache: Cache, rows: float, width: int) -> OpCost:
    """SiLU·mul (gated: reads 2 × width, writes width per row) or the activation alone."""
    x = _bytes(op.dtype)
    inputs = 2 if op.gated else 1
    return _vector(chip, device, cache, rows * width * (ACTIVATION_FLOPS + op.gated), 0.0,
                   rows * inputs * width * x, rows * width * x)


def _vector(chip: ChipRates, device: Device, cache: Cache, element_ops: float, exps: float, read: float,
            written: float) -> OpCost:
    """A kernel on the vector units over every core: element operations and exps, `read`/`written` bytes."""
    traffic = compulsory([Operand("in", read), Operand("out", written, reads=0, writes=1)], device, cache)
    resource = chip.memory_seconds(traffic)
    used = chip.compute("vector", "fp32")[0]
    resource[f"compute:{used}"] = element_ops / chip.element_ops("fp32") + exps / chip.exp_rate()
    return OpCost("vector", element_ops, sum(traffic.values()), resource, traffic)


def _bytes(dtype: str) -> float:
    return resolve_format(dtype).bits_per_element / 8


def _tile_text(tile: TileShape) -> str:
    return f"{tile.m}x{tile.n}x{tile.k}"
